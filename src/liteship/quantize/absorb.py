"""High-bias absorption (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and Bias
Correction", section 4.1.1) on a Keras model, before conversion.

For a pair ``A → (ReLU | linear) → B`` (the pairs :func:`~liteship.quantize.equalize.find_pairs` finds,
BatchNormalization producers included), a per-channel constant ``c ≥ 0`` moves out of ``A``'s output
into ``B``'s bias::

    b_A ← b_A − c        b_B ← b_B + W_B·c

which leaves the float function unchanged wherever ``A``'s pre-activation stays ≥ ``c`` (``relu(z − c)
= relu(z) − c`` there, and max/average pooling, dropout and flatten commute with the shift). int8 sees
the difference: TFLite quantizes ``A``'s output on ``[min(0, lo), hi]``, so a channel that lives on
``[20, 22]`` forces a 22-wide range on every channel of the tensor; after absorption it is 2 wide.

``c`` comes from the calibration data when there is some (``c = max(0, min over the data of the
pre-activation)``, so the float outputs are exact on that data), otherwise from the BatchNormalization
statistics as in the paper (``c = max(0, β − 3|γ|)``, exact for ~99.9 % of a Gaussian pre-activation;
only pairs whose producer is a BatchNormalization can be absorbed that way).

Pairs are skipped, with the reason, when the producer has no bias to take ``c`` from, when the consumer
has neither a bias nor a BatchNormalization after it to take ``W_B·c``, or when the consumer pads its
input with zeros (``padding="same"`` with a kernel wider than 1): at the border ``W_B·c`` would be added
where the input is padding, so the float outputs would change there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from liteship.quantize import graph
from liteship.quantize.equalize import SkippedPair, find_pairs, max_output_diff
from liteship.types import ReportMixin

BATCH = 8
SIGMAS = 3.0  # the paper's β − 3γ
Method = Literal["data", "batchnorm"]
# why the converter refuses int16x8 (docs/decisions.md, issue 9): the gain is small, the price is not
INT16_REASON = (
    "quantizes activations to 16 bits, where a range even 20× too wide keeps over 3000 levels, while the "
    "absorbed model is exact only where a layer's pre-activation stays above what was moved (the "
    "calibration data): a loss of exactness for no resolution worth having."
)


@dataclass(frozen=True)
class AbsorbedPair(ReportMixin):
    """One pair whose producer's output was shifted down by ``c`` (``B``'s bias took ``W_B·c``).

    Attributes:
        first / second: Producer and consumer layer names.
        channels: Channels with ``c > 0`` (of ``total_channels``).
        bias_moved: ``Σ c`` over the channels (the producer's output units).
        max_shift: The largest ``c``.
        range_before / range_after: Width of the int8 range of the producer's output on the data
            (``max − min(0, min)``, what TFLite calibrates), before and after; ``None`` without data.
    """

    first: str
    second: str
    channels: int
    total_channels: int
    bias_moved: float
    max_shift: float
    range_before: float | None = None
    range_after: float | None = None


@dataclass(frozen=True)
class AbsorptionReport(ReportMixin):
    """What :func:`absorb_high_biases` changed.

    Attributes:
        pairs: Every pair that moved some bias.
        skipped: Pairs that were not absorbed, with the reason (clipping activation, padding, no bias,
            nothing above zero, …).
        method: ``data`` (minimum pre-activation on the calibration data) or ``batchnorm``
            (``β − 3|γ|``, data-free).
        samples: Calibration samples ``c`` was taken over (0 for ``batchnorm``).
        total_bias_moved: ``Σ c`` over all pairs.
        max_abs_diff: Largest |absorbed − original| output on the check data.
    """

    pairs: tuple[AbsorbedPair, ...] = ()
    skipped: tuple[SkippedPair, ...] = ()
    method: Method = "data"
    samples: int = 0
    total_bias_moved: float = 0.0
    max_abs_diff: float | None = None


def absorb_high_biases(
    model: Any, data: np.ndarray | None = None, check_data: np.ndarray | None = None
) -> tuple[Any, AbsorptionReport]:
    """Absorb every eligible pair's high biases; the original model is left untouched.

    Args:
        model: A built single-input ``keras.Model`` (Sequential or functional).
        data: Calibration inputs (batch first, preprocessed). ``c`` is the minimum pre-activation over
            them. Defaults to ``None``: ``c = max(0, β − 3|γ|)`` from BatchNormalization producers only.
        check_data: Inputs to compare original and absorbed outputs on (``max_abs_diff``). Defaults to
            ``data``'s first 64 samples.

    Returns:
        ``(absorbed clone, AbsorptionReport)``.

    Example:
        >>> absorbed, report = absorb_high_biases(model, calib)          # doctest: +SKIP
        >>> report.total_bias_moved, report.max_abs_diff                  # doctest: +SKIP
        (812.4, 3.1e-06)
    """
    clone = graph.clone(model)
    method: Method = "data" if data is not None and len(data) else "batchnorm"
    consumers = graph.consumers(clone)
    eligible, skipped = eligible_pairs(clone, method)
    highs: list[np.ndarray | None]
    if method == "data":
        assert data is not None
        lows, found = _output_extremes(clone, [p.first for p in eligible], np.asarray(data, np.float32))
        highs = list(found)
    else:
        lows = [_batchnorm_floor(p.first) for p in eligible]
        highs = [None] * len(eligible)
    done = []
    for p, lo, hi in zip(eligible, lows, highs, strict=True):
        c = np.maximum(lo, 0.0).astype(np.float32)
        if not np.any(c > 0):
            why = "nothing to absorb: no channel's pre-activation stays above 0" + (
                " on the data" if method == "data" else " by β − 3|γ|"
            )
            skipped.append(SkippedPair(p.first.name, p.second.name, why))
            continue
        _shift_producer(p.first, c)
        _compensate_consumer(p, c, consumers)
        done.append(_absorbed(p, c, lo, hi))
    check = check_data if check_data is not None else (data[:64] if data is not None else None)
    diff = max_output_diff(model, clone, check) if check is not None and len(check) else None
    return clone, AbsorptionReport(
        pairs=tuple(done),
        skipped=tuple(skipped),
        method=method,
        samples=len(data) if method == "data" and data is not None else 0,
        total_bias_moved=float(sum(p.bias_moved for p in done)),
        max_abs_diff=diff,
    )


def eligible_pairs(model: Any, method: Method = "data") -> tuple[list[Any], list[SkippedPair]]:
    """The pairs of ``model`` whose high biases could be absorbed exactly (before looking at any data),
    and the others with the reason: equalization's pairs (``equalize.find_pairs``) less those
    :func:`absorb_high_biases` cannot shift exactly."""
    pairs, skipped = find_pairs(model)
    consumers = graph.consumers(model)
    eligible = []
    for p in pairs:
        why = _pair_problem(p, method, consumers)
        if why is None:
            eligible.append(p)
        else:
            skipped.append(SkippedPair(p.first.name, p.second.name, why))
    return eligible, skipped


def _pair_problem(p: Any, method: Method, consumers: dict[int, list[Any]]) -> str | None:
    """Why ``p`` cannot be absorbed exactly, or ``None``."""
    first, second = p.first, p.second
    if type(first).__name__ != "BatchNormalization" and getattr(first, "bias", None) is None:
        return f"{first.name!r} has no bias to move c out of"
    if method == "batchnorm" and type(first).__name__ != "BatchNormalization":
        return f"{first.name!r} is not a BatchNormalization and no data was given: c cannot be estimated"
    if type(second).__name__ == "Conv2D" and second.padding == "same" and max(second.kernel_size) > 1:
        k = "×".join(str(int(n)) for n in second.kernel_size)
        return (
            f"{second.name!r} pads its input with zeros (padding 'same', {k} kernel): at the border "
            "W·c would be added where the input is padding"
        )
    if getattr(second, "bias", None) is None and _norm_after(second, consumers) is None:
        return f"{second.name!r} has no bias (and no BatchNormalization after it) to take W·c"
    return None


def _norm_after(layer: Any, consumers: dict[int, list[Any]]) -> Any:
    """The BatchNormalization that alone follows a linear ``layer`` (TFLite folds it into it), or None."""
    nxt = consumers.get(id(layer.output), [])
    linear = getattr(layer, "activation", None) is None or layer.activation.__name__ == "linear"
    if linear and len(nxt) == 1 and type(nxt[0]).__name__ == "BatchNormalization":
        return nxt[0]
    return None


def _output_extremes(
    model: Any, layers: list[Any], data: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer, the per-channel minimum and maximum of its output over ``data``, streamed by batch."""
    import keras

    if not layers:
        return [], []
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # called with one array below
    probe = keras.Model(inputs, [la.output for la in layers])
    lows: list[np.ndarray | None] = [None] * len(layers)
    highs: list[np.ndarray | None] = [None] * len(layers)
    for i in range(0, len(data), BATCH):
        outs = probe(data[i : i + BATCH], training=False)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        for j, y in enumerate(outs):
            y = np.asarray(keras.ops.convert_to_numpy(y), dtype=np.float64)
            y = y.reshape(-1, y.shape[-1])
            lo, hi = y.min(axis=0), y.max(axis=0)
            prev_lo, prev_hi = lows[j], highs[j]
            lows[j] = lo if prev_lo is None else np.minimum(prev_lo, lo)
            highs[j] = hi if prev_hi is None else np.maximum(prev_hi, hi)
    return [np.asarray(x) for x in lows], [np.asarray(x) for x in highs]


def _batchnorm_floor(bn: Any) -> np.ndarray:
    """``β − 3|γ|`` per channel: the paper's lower bound of a BatchNormalization's output."""
    gamma = np.asarray(bn.gamma.numpy(), dtype=np.float64)
    beta = np.asarray(bn.beta.numpy(), dtype=np.float64)
    return beta - SIGMAS * np.abs(gamma)


def _shift_producer(layer: Any, c: np.ndarray) -> None:
    """``b ← b − c`` (``β`` for a BatchNormalization); a DepthwiseConv2D's bias is per output channel."""
    var = layer.beta if type(layer).__name__ == "BatchNormalization" else layer.bias
    var.assign((var.numpy() - c).astype(np.float32))


def _compensate_consumer(p: Any, c: np.ndarray, consumers: dict[int, list[Any]]) -> None:
    """``b_B ← b_B + W_B·c``; a bias-less consumer's BatchNormalization takes it in its moving mean."""
    w = p.second.get_weights()[0].astype(np.float64)
    if type(p.second).__name__ == "Dense":
        rows = (
            np.tile(c, w.shape[0] // len(c)) if p.flatten_channels else c
        )  # Flatten: row r is channel r % C
        d = rows.astype(np.float64) @ w
    else:
        d = np.einsum("hwio,i->o", w, c.astype(np.float64))
    if getattr(p.second, "bias", None) is not None:
        p.second.bias.assign((p.second.bias.numpy() + d).astype(np.float32))
        return
    norm = _norm_after(p.second, consumers)  # checked by _pair_problem
    norm.moving_mean.assign((norm.moving_mean.numpy() - d).astype(np.float32))


def _absorbed(p: Any, c: np.ndarray, lo: np.ndarray, hi: np.ndarray | None) -> AbsorbedPair:
    before = after = None
    if hi is not None:
        before = float(hi.max() - min(0.0, float(lo.min())))
        after = float((hi - c).max() - min(0.0, float((lo - c).min())))
    return AbsorbedPair(
        first=p.first.name,
        second=p.second.name,
        channels=int(np.sum(c > 0)),
        total_channels=len(c),
        bias_moved=float(c.sum()),
        max_shift=float(c.max()),
        range_before=before,
        range_after=after,
    )


__all__ = ["absorb_high_biases", "eligible_pairs", "AbsorptionReport", "AbsorbedPair"]
