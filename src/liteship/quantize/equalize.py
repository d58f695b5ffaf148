"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and
Bias Correction", section 4.1) on a Keras model, before conversion.

For a pair ``A → (ReLU | linear) → B`` where ``A`` is a Conv2D, DepthwiseConv2D or Dense layer and ``B`` a
Conv2D, DepthwiseConv2D (MobileNet's pointwise → depthwise) or Dense layer, output channel ``i`` of ``A`` is divided
by ``s_i`` and input channel ``i`` of ``B``
multiplied by it. ReLU is positively homogeneous (``relu(x / s) = relu(x) / s`` for ``s > 0``), and so are
max/average pooling, dropout and flatten, so the float function is unchanged while both weight ranges
become ``sqrt(r1_i · r2_i)``: one outlier channel no longer dictates the int8 scale of the whole tensor.

A ``BatchNormalization`` right after a linear Conv/DepthwiseConv/Dense (MobileNetV2's ``Conv → BN``) is
equalized as the kernel TFLite folds it into (``W·γ/σ``): the producer's scale divides the
normalization's ``γ`` and ``β`` (``BN(x)/s`` exactly), so the Keras graph keeps its layers and the
converter folds the balanced kernel. The producer's ranges are those of the folded kernel.

Clipping activations (ReLU6, ``ReLU(max_value=…)``, leaky ReLU, anything else) are skipped: a per-channel
scale would move the clip, so the float outputs would change (the clip stays exact only when every
scale is 1, i.e. nothing to equalize). Every skipped pair is reported with why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteship.quantize import graph
from liteship.types import ReportMixin

PASS_THROUGH = ("MaxPooling2D", "AveragePooling2D", "Dropout", "Flatten")
PRODUCERS = ("Conv2D", "DepthwiseConv2D", "Dense")
# a depthwise consumer multiplies input channel i by its own kernel slice only: scaling that slice by s_i
# undoes the producer's 1/s_i exactly (the MobileNet pattern pointwise → BN → ReLU → depthwise, issue 20)
CONSUMERS = ("Conv2D", "DepthwiseConv2D", "Dense")
MAX_ITERATIONS = 20


@dataclass(frozen=True)
class EqualizedPair(ReportMixin):
    """One producer/consumer pair: the widest/narrowest channel range ratio of the producer's weights
    before and after (1.0 is perfectly balanced)."""

    first: str
    second: str
    spread_before: float
    spread_after: float


@dataclass(frozen=True)
class SkippedPair(ReportMixin):
    first: str
    second: str | None
    reason: str


@dataclass(frozen=True)
class EqualizationReport(ReportMixin):
    """What :func:`equalize` changed.

    Attributes:
        pairs: Every equalized pair.
        skipped: Pairs that were not equalized, with the reason (clipping activation, branching, …).
        iterations: Sweeps over all pairs until the scales settled.
        max_abs_diff: Largest |equalized − original| output on the check data (float32 noise only).
    """

    pairs: tuple[EqualizedPair, ...] = ()
    skipped: tuple[SkippedPair, ...] = ()
    iterations: int = 0
    max_abs_diff: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class _Pair:
    first: Any
    second: Any
    flatten_channels: int | None  # a Flatten in between: B's rows map to channel ``row % C``
    kernel: Any = None  # ``first`` is a BatchNormalization: the Conv/Dense it folds into


def equalize(model: Any, check_data: np.ndarray | None = None) -> tuple[Any, EqualizationReport]:
    """Equalize every eligible layer pair of ``model``; the original is left untouched.

    Args:
        model: A built ``keras.Model`` (Sequential or functional).
        check_data: Inputs to compare original and equalized outputs on (``max_abs_diff``).

    Returns:
        ``(equalized clone, EqualizationReport)``.
    """
    clone = graph.clone(model)
    pairs, skipped = find_pairs(clone)
    spreads = {id(p): _spread(_producer_ranges(p.first, p.kernel)) for p in pairs}
    iterations = 0
    for iterations in range(1, MAX_ITERATIONS + 1):  # noqa: B007 — reported
        moved = max((_equalize_pair(p) for p in pairs), default=0.0)
        if moved < 1e-3:
            break
    done = tuple(
        EqualizedPair(
            p.first.name, p.second.name, spreads[id(p)], _spread(_producer_ranges(p.first, p.kernel))
        )
        for p in pairs
    )
    diff = None
    if check_data is not None and len(check_data):
        diff = max_output_diff(model, clone, check_data)
    return clone, EqualizationReport(
        pairs=done, skipped=tuple(skipped), iterations=iterations, max_abs_diff=diff
    )


def max_output_diff(a: Any, b: Any, data: np.ndarray) -> float:
    """Largest absolute difference between two Keras models' outputs on ``data``."""
    outs_a, outs_b = a.predict(data, verbose=0), b.predict(data, verbose=0)
    if not isinstance(outs_a, (list, tuple)):
        outs_a, outs_b = [outs_a], [outs_b]
    return float(
        max(np.max(np.abs(np.asarray(x) - np.asarray(y))) for x, y in zip(outs_a, outs_b, strict=True))
    )


def find_pairs(model: Any) -> tuple[list[_Pair], list[SkippedPair]]:
    """Producer → (ReLU | linear, pooling, flatten) → consumer chains of ``model``."""
    consumers = graph.consumers(model)
    outputs = {id(t) for t in model.outputs}
    pairs: list[_Pair] = []
    skipped: list[SkippedPair] = []
    for layer in model.layers:
        if type(layer).__name__ not in PRODUCERS:
            continue
        why = _activation_problem(layer)
        kernel = None
        after = consumers.get(id(layer.output), [])
        if why is None and len(after) == 1 and type(after[0]).__name__ == "BatchNormalization":
            why = _batchnorm_problem(after[0])
            if why is None:  # equalize the folded kernel: the BatchNormalization is the producer
                kernel, layer = layer, after[0]
        node, flatten = layer, None
        while why is None:
            if id(node.output) in outputs:
                why = "its output is a model output"
                break
            nxt = consumers.get(id(node.output), [])
            if len(nxt) != 1:
                why = (
                    f"its output feeds {len(nxt)} layers (equalization needs one consumer)"
                    if nxt
                    else "no consumer"
                )
                break
            node = nxt[0]
            kind = type(node).__name__
            if kind == "ReLU":
                why = _relu_layer_problem(node)
                continue
            if kind in PASS_THROUGH:
                if kind == "Flatten":
                    flatten = int(node.input.shape[-1])
                continue
            if kind in CONSUMERS and _consumer_ok(node):
                if flatten is not None and kind != "Dense":
                    why = "a Flatten feeds a non-Dense layer"
                    break
                pairs.append(_Pair(layer, node, flatten, kernel))
                break
            why = f"next layer {node.name!r} is a {kind} (equalization needs a Conv2D, DepthwiseConv2D or Dense)"
        if why is not None:
            skipped.append(SkippedPair(layer.name, None if node is layer else node.name, why))
    return pairs, skipped


def _batchnorm_problem(bn: Any) -> str | None:
    if not bn.scale or not bn.center:
        return f"{bn.name!r} has no {'γ' if not bn.scale else 'β'} to carry a per-channel scale"
    if int(bn.axis if isinstance(bn.axis, int) else bn.axis[0]) not in (-1, len(bn.input.shape) - 1):
        return f"{bn.name!r} normalizes axis {bn.axis}, not the channels"
    return None


def _folded(bn: Any) -> np.ndarray:
    """``γ/σ`` per channel: what TFLite multiplies the preceding kernel by when it folds ``bn``."""
    gamma, _, _, var = bn.get_weights()
    return np.asarray(gamma / np.sqrt(var + bn.epsilon))


def _activation_problem(layer: Any) -> str | None:
    import keras

    name = keras.activations.serialize(layer.activation)
    name = name if isinstance(name, str) else getattr(layer.activation, "__name__", str(name))
    if name in ("linear", "relu"):
        return None
    return (
        f"activation {name!r} clips or is not positively homogeneous: a per-channel scale would change "
        "the float outputs"
    )


def _relu_layer_problem(layer: Any) -> str | None:
    if layer.max_value is not None:
        return f"{layer.name!r} clips at {float(layer.max_value):g} (ReLU6-like): scaling would move the clip"
    if float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
        return f"{layer.name!r} is a leaky/thresholded ReLU: not positively homogeneous"
    return None


def _consumer_ok(layer: Any) -> bool:
    return type(layer).__name__ != "Conv2D" or int(getattr(layer, "groups", 1)) == 1


def _producer_ranges(layer: Any, kernel: Any = None) -> np.ndarray:
    """Per output channel max |weight| of ``layer``; for a BatchNormalization, of the kernel TFLite folds
    it into (``kernel``, the layer before it, times ``γ/σ``)."""
    if type(layer).__name__ == "BatchNormalization":
        return _producer_ranges(kernel) * np.abs(_folded(layer))
    w = layer.get_weights()[0]
    if type(layer).__name__ == "DepthwiseConv2D":  # (kh, kw, in, mult) → output channel c·mult + j
        return np.abs(w).max(axis=(0, 1)).reshape(-1)
    return np.abs(w.reshape(-1, w.shape[-1])).max(axis=0)


def _consumer_ranges(p: _Pair) -> np.ndarray:
    w = p.second.get_weights()[0]
    if type(p.second).__name__ == "Dense":
        rows = np.abs(w).max(axis=1)
        if p.flatten_channels:
            return rows.reshape(-1, p.flatten_channels).max(axis=0)
        return rows
    return np.abs(w).max(axis=(0, 1, 3))


def _equalize_pair(p: _Pair) -> float:
    """Balance one pair in place; returns the largest relative change of a scale (0 when settled)."""
    r1, r2 = _producer_ranges(p.first, p.kernel), _consumer_ranges(p)
    ok = (r1 > 0) & (r2 > 0)
    s = np.ones_like(r1)
    s[ok] = np.sqrt(r1[ok] / r2[ok])
    first = p.first.get_weights()
    if type(p.first).__name__ == "BatchNormalization":  # γ and β: BN(x)/s, the folded kernel balanced
        first[0], first[1] = first[0] / s, first[1] / s
    else:
        if type(p.first).__name__ == "DepthwiseConv2D":
            first[0] = first[0] / s.reshape(first[0].shape[2], first[0].shape[3])
        else:
            first[0] = first[0] / s
        if len(first) > 1:
            first[1] = first[1] / s
    second = p.second.get_weights()
    if type(p.second).__name__ == "Dense":
        rows = np.tile(s, second[0].shape[0] // len(s)) if p.flatten_channels else s
        second[0] = second[0] * rows[:, None]
    else:
        second[0] = second[0] * s[None, None, :, None]
    p.first.set_weights([w.astype(np.float32) for w in first])
    p.second.set_weights([w.astype(np.float32) for w in second])
    return float(np.max(np.abs(np.log(s)))) if len(s) else 0.0


def _spread(ranges: np.ndarray) -> float:
    live = ranges[ranges > 0]
    return float(live.max() / live.min()) if len(live) else math.nan


__all__ = ["equalize", "find_pairs", "max_output_diff", "EqualizationReport", "EqualizedPair", "SkippedPair"]
