"""Activation range setting: the ranges int8 quantizes each activation to, from calibration statistics.

TFLite's converter quantizes every activation to the plain min/max it saw during calibration: one
outlier value among millions stretches the range, and every other value loses resolution. This module
sets the ranges of a *calibrated* model (:func:`liteship.quantize.denylist.calibrate`: a float model
whose tensors carry min/max) before ``mlir_quantize`` turns it into integers, as AIMET and NNCF do:

* ``minmax`` — the calibrated ranges as they are (TFLite's default);
* ``percentile`` — clip to the ``percentile``-th / ``100 − percentile``-th value of each tensor;
* ``mse`` — the clipping range that minimises the expected int8 quantization error of each tensor
  (clipping error outside the range + rounding error ``step² / 12`` inside), over a grid of ranges.

One LiteRT pass over the calibration samples (every tensor kept) builds a histogram per activation on
its calibrated range. The model inputs are set the same way (their quantization is the first op's, and
an int8-I/O model saturates values outside its input range just as inside the network).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from liteship.errors import UsageError

RangeSetting = Literal["minmax", "percentile", "mse"]
RANGE_SETTINGS: tuple[RangeSetting, ...] = ("minmax", "percentile", "mse")
BINS = 2048  # histogram bins per tensor over its calibrated range
GRID = 64  # candidate clipping points per side for ``mse``
LEVELS = 255  # int8: 256 levels, 255 steps
DEFAULT_PERCENTILE = 99.99


@dataclass(frozen=True)
class RangeReport:
    """What range setting changed: per method, how many activation ranges it narrowed and by how much."""

    method: str
    tensors: int  # activations with a calibrated range
    narrowed: int  # whose range the method made smaller
    median_ratio: float | None  # median (new width / calibrated width) over the narrowed ones
    samples: int
    seconds: float
    percentile: float | None = None
    worst: list[dict[str, Any]] = field(default_factory=list)  # the most narrowed tensors

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "tensors": self.tensors,
            "narrowed": self.narrowed,
            "median_ratio": self.median_ratio,
            "samples": self.samples,
            "seconds": round(self.seconds, 3),
            "percentile": self.percentile,
            "worst": self.worst,
        }


def check_range_setting(method: str, percentile: float = DEFAULT_PERCENTILE) -> None:
    """Raises UsageError for an unknown method or a percentile outside (50, 100]."""
    if method not in RANGE_SETTINGS:
        raise UsageError(
            f"unknown range setting {method!r}; expected one of {', '.join(RANGE_SETTINGS)}.",
            hint="`minmax` is TFLite's default; `mse` usually recovers the most int8 accuracy.",
            parameter="range_setting",
        )
    if not (isinstance(percentile, (int, float)) and 50.0 < float(percentile) <= 100.0):
        raise UsageError(
            f"range-setting percentile {percentile!r} is out of range; expected a number in (50, 100].",
            hint="99.99 clips the top and bottom 0.01 % of each activation's values.",
            parameter="range_percentile",
        )


def set_ranges(
    calibrated: bytes,
    samples: Sequence[Any],
    method: str = "mse",
    *,
    percentile: float = DEFAULT_PERCENTILE,
) -> tuple[bytes, RangeReport]:
    """Return ``calibrated`` with each activation's min/max set by ``method`` from ``samples``.

    Args:
        calibrated: A calibrate-only model (float, tensors carrying min/max).
        samples: Model-ready inputs: one list of arrays (in input order) or ``{name: array}`` per sample,
            as :class:`~liteship.convert.calibration.Calibration` holds them.
        method: ``minmax`` (returned unchanged), ``percentile`` or ``mse``.
        percentile: For ``percentile``. Defaults to 99.99.

    Raises:
        UsageError: Unknown method, bad percentile, or no samples.
    """
    import time

    from liteship.model.flatbuffer import load_model, pack_model, tensor_name

    check_range_setting(method, percentile)
    t0 = time.perf_counter()
    loaded = load_model(calibrated)
    sg = loaded.model.subgraphs[0]
    ranged = _ranged_activations(loaded.model)
    if method == "minmax" or not ranged:
        return calibrated, RangeReport(method, len(ranged), 0, None, 0, time.perf_counter() - t0)
    if not samples:
        raise UsageError(
            f"range setting {method!r} needs calibration samples; none were given.", parameter="calibration"
        )
    hists = _histograms(calibrated, samples, {i: _range(sg.tensors[i]) for i in ranged})
    ratios: list[tuple[float, str, float, float, float, float]] = []
    for i, (counts, lo, hi) in hists.items():
        if counts.sum() == 0 or hi <= lo:
            continue
        new_lo, new_hi = (
            _percentile_range(counts, lo, hi, percentile)
            if method == "percentile"
            else _mse_range(counts, lo, hi)
        )
        new_lo, new_hi = min(new_lo, 0.0), max(new_hi, 0.0)  # int8 activations represent 0 exactly
        if new_hi - new_lo <= 0:
            continue
        if new_lo > lo + 1e-12 or new_hi < hi - 1e-12:
            q = sg.tensors[i].quantization
            q.min, q.max = [float(new_lo)], [float(new_hi)]
            ratios.append(((new_hi - new_lo) / (hi - lo), tensor_name(sg.tensors[i]), lo, hi, new_lo, new_hi))
    ratios.sort()
    report = RangeReport(
        method=method,
        tensors=len(ranged),
        narrowed=len(ratios),
        median_ratio=float(np.median([r[0] for r in ratios])) if ratios else None,
        samples=len(samples),
        seconds=time.perf_counter() - t0,
        percentile=float(percentile) if method == "percentile" else None,
        worst=[
            {"tensor": n.split(";")[0], "calibrated": [a, b], "set": [c, d], "ratio": round(r, 4)}
            for r, n, a, b, c, d in ratios[:5]
        ],
    )
    return pack_model(loaded.model, loaded.data), report


def _range(t: Any) -> tuple[float, float]:
    q = t.quantization
    return float(q.min[0]), float(q.max[0])


def _ranged_activations(model: Any) -> list[int]:
    """Indices of subgraph 0's non-constant tensors with one calibrated min/max."""
    from liteship.model.flatbuffer import has_data

    sg = model.subgraphs[0]
    out = []
    for i, t in enumerate(sg.tensors):
        q = t.quantization
        if q is None or q.min is None or q.max is None or len(q.min) != 1 or len(q.max) != 1:
            continue
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        if buf is not None and has_data(buf):
            continue  # a constant
        out.append(i)
    return out


def _histograms(
    model: bytes, samples: Sequence[Any], ranges: dict[int, tuple[float, float]]
) -> dict[int, tuple[np.ndarray, float, float]]:
    """One LiteRT pass keeping every tensor: a ``BINS``-bin histogram of each tensor on its range."""
    from liteship.quantize.tflite_graph import all_tensors_interpreter, feed

    interp = all_tensors_interpreter(model)
    counts = {i: np.zeros(BINS, dtype=np.int64) for i in ranges}
    for sample in samples:
        feed(interp, sample)
        interp.invoke()
        for i, (lo, hi) in ranges.items():
            if hi <= lo:
                continue
            v = interp.get_tensor(i).ravel()
            idx = ((v - lo) * (BINS / (hi - lo))).astype(np.int64)
            np.clip(idx, 0, BINS - 1, out=idx)
            counts[i] += np.bincount(idx, minlength=BINS)
    return {i: (counts[i], lo, hi) for i, (lo, hi) in ranges.items()}


def _percentile_range(counts: np.ndarray, lo: float, hi: float, pct: float) -> tuple[float, float]:
    edges = np.linspace(lo, hi, BINS + 1)
    cdf = np.cumsum(counts) / counts.sum()
    tail = (100.0 - pct) / 100.0
    i_lo = int(np.searchsorted(cdf, tail, side="left"))
    i_hi = int(np.searchsorted(cdf, 1.0 - tail, side="left"))
    return float(edges[i_lo]), float(edges[min(i_hi + 1, BINS)])


def _mse_range(counts: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The ``[a, b]`` (a grid of ``GRID`` points per side, the calibrated ends included) with the least
    expected squared error: values outside clip to the nearest end, values inside round (``step² / 12``)."""
    width = hi - lo
    centres = lo + (np.arange(BINS) + 0.5) * (width / BINS)
    p = counts.astype(np.float64) / counts.sum()
    fractions = np.linspace(0.0, 1.0, GRID + 1)[1:] ** 2  # finer near the calibrated end
    # candidate ends: shrink each side towards 0 (or towards the other end when 0 is outside)
    anchor = min(max(0.0, lo), hi)
    his = anchor + (hi - anchor) * fractions if hi > anchor else np.array([hi])
    los = anchor - (anchor - lo) * fractions if lo < anchor else np.array([lo])
    upper = (p * np.where(centres > his[:, None], (centres - his[:, None]) ** 2, 0.0)).sum(axis=1)
    lower = (p * np.where(centres < los[:, None], (los[:, None] - centres) ** 2, 0.0)).sum(axis=1)
    below_b = (p * (centres <= his[:, None])).sum(axis=1)  # mass inside, per side
    below_a = (p * (centres < los[:, None])).sum(axis=1)
    step2 = ((his[None, :] - los[:, None]) / LEVELS) ** 2 / 12.0
    err = lower[:, None] + upper[None, :] + step2 * (below_b[None, :] - below_a[:, None])
    ia, ib = np.unravel_index(int(np.argmin(err)), err.shape)
    return float(los[ia]), float(his[ib])


__all__ = ["RANGE_SETTINGS", "RangeReport", "RangeSetting", "check_range_setting", "set_ranges"]
