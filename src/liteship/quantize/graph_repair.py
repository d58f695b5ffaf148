"""The accuracy fixes on the float ``.tflite`` graph, for every source: equalization (depthwise and ReLU6
included), learned rounding, bias correction; then calibration and range setting.

Every source becomes a float ``.tflite`` first (a user's file as it is); the fixes rewrite its weights
(:class:`~liteship.quantize.tflite_graph.FloatGraph`), TFLite's calibrator records each activation's
range on the calibration samples, :func:`~liteship.quantize.ranges.set_ranges` narrows them, and the
MLIR quantizer (:func:`~liteship.quantize.denylist.quantize_calibrated`, with its denylist for ops kept
in float) writes the integer model — the same quantizer the TensorFlow/Keras sources go through.

Order, each step optional (:class:`GraphFixes`):

1. **Cross-layer equalization** (Nagel et al. 2019, §4.1) of every pair ``A → B`` where ``A`` is a
   conv / depthwise / fully connected op whose output only ``B`` reads and ``B`` a conv, a depthwise
   conv (multiplier 1) or a fully connected op. ``A``'s output channel ``i`` is divided by ``s_i`` and
   ``B``'s input channel ``i`` multiplied by it. ``RELU`` and no activation commute with a positive scale;
   ``RELU6`` does only where the clip is not reached, so a channel of a ``RELU6`` producer is scaled only
   when its largest value on the calibration data stays below 6 (then ``s_i ≥ max_i / 6`` keeps it below
   the clip afterwards, and the float outputs stay exact on that data); a channel that reaches 6 keeps
   ``s_i = 1``. The report says how many channels the clip held back.
2. **Learned rounding** (:mod:`liteship.quantize.adaround`).
3. **Bias correction** (§4.2): the mean output shift the int8 weights cause, ``(W_q − W)·E[x]`` per
   output channel (``W`` the weights before rounding, ``E[x]`` the mean input patch, padding included),
   is subtracted from the bias. After learned rounding it corrects what rounding could not remove.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteship._quiet import native_stderr_silenced
from liteship.quantize.adaround import adaround_graph, input_moments
from liteship.quantize.ranges import set_ranges
from liteship.quantize.tflite_graph import (
    FloatGraph,
    WeightedOp,
    all_tensors_interpreter,
    feed,
    quantize_weight,
)
from liteship.types import ReportMixin

EQUALIZE_SWEEPS = 4
CHECK_SAMPLES = 16
RELU6_CLIP = 6.0
CLIP_MARGIN = 0.98  # a channel whose calibration maximum reaches 98 % of the clip counts as clipping


@dataclass(frozen=True)
class GraphFixes:
    """Which fixes act on the float graph, and how activation ranges are set.

    Attributes:
        equalize: Cross-layer equalization (conv/depthwise/fully connected pairs, ReLU6-aware).
        adaround: Learned rounding of the int8 weights.
        bias_correction: Subtract the int8 weights' mean output shift from the biases.
        range_setting: ``minmax``, ``percentile`` or ``mse`` (:mod:`liteship.quantize.ranges`).
    """

    equalize: bool = False
    adaround: bool = False
    bias_correction: bool = False
    range_setting: str = "minmax"
    absorb_high_bias: bool = False

    @property
    def rewrites_weights(self) -> bool:
        return self.equalize or self.adaround or self.bias_correction or self.absorb_high_bias

    def names(self) -> list[str]:
        on = [n for n in ("equalize", "absorb_high_bias", "adaround", "bias_correction") if getattr(self, n)]
        return on + ([f"range_{self.range_setting}"] if self.range_setting != "minmax" else [])


@dataclass(frozen=True)
class EqualizedGraphPair(ReportMixin):
    producer: str
    consumer: str
    activation: str
    channels: int
    scaled: int  # channels whose scale moved off 1
    held_by_clip: int  # RELU6 channels that reach the clip and kept scale 1
    range_before: float  # max/min ratio of the consumer's per-input-channel ranges
    range_after: float
    into_depthwise: bool = False


@dataclass(frozen=True)
class GraphEqualizationReport(ReportMixin):
    pairs: list[EqualizedGraphPair] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    max_output_diff: float | None = None  # relative to the largest float output, on calibration samples
    seconds: float = 0.0

    def summary(self) -> str:
        held = sum(p.held_by_clip for p in self.pairs)
        diff = (
            f", float outputs within {self.max_output_diff:.1e}" if self.max_output_diff is not None else ""
        )
        return (
            f"{len(self.pairs)} pair(s) equalized ({sum(1 for p in self.pairs if p.into_depthwise)} into "
            f"a depthwise conv), {held} ReLU6 channel(s) left unscaled because they reach the clip{diff}"
            if self.pairs
            else "no pair to equalize"
        )


@dataclass(frozen=True)
class BiasCorrectionGraphReport(ReportMixin):
    ops: int = 0
    no_bias: list[str] = field(default_factory=list)
    mean_shift_before: float = 0.0  # mean |E[(W_q − W)·x]| over corrected channels
    seconds: float = 0.0

    def summary(self) -> str:
        return f"{self.ops} op(s) corrected, mean |shift| {self.mean_shift_before:.3g}" + (
            f"; {len(self.no_bias)} op(s) without a bias left as they are" if self.no_bias else ""
        )


@dataclass(frozen=True)
class GraphAbsorptionReport(ReportMixin):
    """High-bias absorption on the graph: pairs whose producer's always-on offset moved into the consumer."""

    pairs: list[dict[str, Any]] = field(default_factory=list)  # producer, consumer, channels, max_offset
    skipped: list[dict[str, str]] = field(default_factory=list)
    max_output_diff: float | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        if not self.pairs:
            reasons = sorted({s["reason"] for s in self.skipped})[:2]
            return "no pair could absorb a bias" + (f" ({'; '.join(reasons)})" if reasons else "")
        moved = sum(p["channels"] for p in self.pairs)
        diff = (
            f", float outputs within {self.max_output_diff:.1e}" if self.max_output_diff is not None else ""
        )
        return f"{len(self.pairs)} pair(s), {moved} channel offset(s) moved into the next op's bias{diff}"


@dataclass(frozen=True)
class GraphRepairReport(ReportMixin):
    """What the graph fixes did, step by step."""

    fixes: list[str]
    equalize: GraphEqualizationReport | None = None
    absorb_high_bias: GraphAbsorptionReport | None = None
    adaround: Any = None  # AdaRoundReport
    bias_correction: BiasCorrectionGraphReport | None = None
    ranges: Any = None  # RangeReport
    seconds: float = 0.0

    def by_fix(self) -> dict[str, dict[str, Any]]:
        """``{fix: its report as a dict, with a one-line "summary"}`` in the order the fixes ran (what
        :class:`~liteship.convert.ConversionReport` keeps as ``graph_fixes``)."""
        out: dict[str, dict[str, Any]] = {}
        for name, rep in (
            ("equalize", self.equalize),
            ("absorb_high_bias", self.absorb_high_bias),
            ("adaround", self.adaround),
            ("bias_correction", self.bias_correction),
        ):
            if rep is not None:
                out[name] = {**rep.to_dict(), "summary": rep.summary(), "on": "float .tflite graph"}
        if self.ranges is not None and self.ranges.method != "minmax":
            out["range_setting"] = self.ranges.to_dict()
        return out

    def lines(self) -> list[str]:
        out = []
        if self.equalize is not None:
            out.append(f"equalization: {self.equalize.summary()}")
        if self.adaround is not None:
            out.append(f"learned rounding: {self.adaround.summary()}")
        if self.bias_correction is not None:
            out.append(f"bias correction: {self.bias_correction.summary()}")
        if self.ranges is not None and self.ranges.method != "minmax":
            out.append(
                f"ranges ({self.ranges.method}): {self.ranges.narrowed} of {self.ranges.tensors} activation "
                "ranges narrowed"
            )
        return out


# --- equalization ------------------------------------------------------------------------------------
def _pairs(graph: FloatGraph) -> tuple[list[tuple[WeightedOp, WeightedOp]], list[dict[str, str]]]:
    pairs, skipped = [], []
    for a in graph.ops:
        readers = graph.consumers(a.output)
        if len(readers) != 1 or graph.is_model_output(a.output):
            continue
        b = graph.by_index(readers[0])
        if b is None or b.input != a.output:
            continue
        why = None
        if a.activation not in ("NONE", "RELU", "RELU6"):
            why = f"activation {a.activation} does not commute with a per-channel scale"
        elif b.depthwise and b.multiplier != 1:
            why = "depthwise channel multiplier > 1"
        elif b.kind == "FULLY_CONNECTED" and graph.weight(b).shape[1] != graph.weight(a).shape[0]:
            why = "the fully connected op reads a reshaped input"
        if why:
            skipped.append({"producer": a.name, "consumer": b.name, "reason": why})
        else:
            pairs.append((a, b))
    return pairs, skipped


def _consumer_ranges(graph: FloatGraph, b: WeightedOp, w: np.ndarray) -> np.ndarray:
    """Per input channel of ``b``: the largest |weight| reading it."""
    if b.depthwise:
        return np.abs(w).max(axis=1)
    channels = graph.shape(b.weight)[-1]
    return np.abs(w.reshape(w.shape[0], -1, channels)).max(axis=(0, 1))


def _scale_consumer(graph: FloatGraph, b: WeightedOp, s: np.ndarray) -> None:
    w = graph.weight(b)
    if b.depthwise:
        graph.set_weight(b, w * s[:, None])
    else:
        channels = graph.shape(b.weight)[-1]
        graph.set_weight(b, (w.reshape(w.shape[0], -1, channels) * s).reshape(w.shape))


def _channel_max(model: bytes, samples: Sequence[Any], tensors: Sequence[int]) -> dict[int, np.ndarray]:
    return _channel_extremes(model, samples, tensors)[1]


def equalize_graph(graph: FloatGraph, model: bytes, samples: Sequence[Any]) -> GraphEqualizationReport:
    """Cross-layer equalization of ``graph`` in place (see the module docstring)."""
    t0 = time.perf_counter()
    pairs, skipped = _pairs(graph)
    if not pairs:
        return GraphEqualizationReport(skipped=skipped, seconds=time.perf_counter() - t0)
    clipped = [a.output for a, _ in pairs if a.activation == "RELU6"]
    maxima = _channel_max(model, samples, clipped) if clipped else {}
    before = {b.index: _consumer_ranges(graph, b, graph.weight(b)) for _, b in pairs}
    held = {a.index: 0 for a, _ in pairs}
    scaled: dict[int, np.ndarray] = {a.index: np.ones(graph.weight(a).shape[0]) for a, _ in pairs}
    for _ in range(EQUALIZE_SWEEPS):
        for a, b in pairs:
            wa, wb = graph.weight(a), graph.weight(b)
            r1 = np.abs(wa).max(axis=1)
            r2 = _consumer_ranges(graph, b, wb)
            ok = (r1 > 0) & (r2 > 0)
            s = np.ones_like(r1, dtype=np.float64)
            s[ok] = np.sqrt(r1[ok] / r2[ok])
            if a.activation == "RELU6":
                top = maxima[a.output]
                reaches = top >= RELU6_CLIP * CLIP_MARGIN
                s = np.where(reaches, 1.0, np.maximum(s, top / (RELU6_CLIP * CLIP_MARGIN)))
                held[a.index] = int(reaches.sum())
                maxima[a.output] = np.where(reaches, top, top / s)
            s = s.astype(np.float32)
            graph.set_weight(a, wa / s[:, None])
            graph.set_bias(a, graph.bias(a) / s)
            _scale_consumer(graph, b, s)
            scaled[a.index] = scaled[a.index] * s
    report_pairs = []
    for a, b in pairs:
        r_before, r_after = before[b.index], _consumer_ranges(graph, b, graph.weight(b))
        report_pairs.append(
            EqualizedGraphPair(
                producer=f"{a.kind} {a.name}",
                consumer=f"{b.kind} {b.name}",
                activation=a.activation,
                channels=len(scaled[a.index]),
                scaled=int((np.abs(scaled[a.index] - 1) > 1e-6).sum()),
                held_by_clip=held[a.index],
                range_before=_spread(r_before),
                range_after=_spread(r_after),
                into_depthwise=b.depthwise,
            )
        )
    return GraphEqualizationReport(pairs=report_pairs, skipped=skipped, seconds=time.perf_counter() - t0)


def _spread(r: np.ndarray) -> float:
    live = r[r > 0]
    return float(live.max() / live.min()) if len(live) else 1.0


def max_output_diff(a: bytes, b: bytes, samples: Sequence[Any]) -> float:
    """Largest |difference| of the two float models' outputs on ``samples``, relative to the largest
    output of ``a``."""
    ia, ib = all_tensors_interpreter(a), all_tensors_interpreter(b)
    worst, scale = 0.0, 0.0
    for sample in samples:
        for interp in (ia, ib):
            feed(interp, sample)
            interp.invoke()
        for da, db in zip(ia.get_output_details(), ib.get_output_details(), strict=True):
            x, y = ia.get_tensor(da["index"]), ib.get_tensor(db["index"])
            worst = max(worst, float(np.abs(x - y).max()))
            scale = max(scale, float(np.abs(x).max()))
    return worst / scale if scale > 0 else worst


# --- high-bias absorption ----------------------------------------------------------------------------
def absorb_graph(graph: FloatGraph, model: bytes, samples: Sequence[Any]) -> GraphAbsorptionReport:
    """High-bias absorption (Nagel et al. 2019, §4.1.1) in place: for a pair ``A → B`` (as equalization
    finds them) whose producer's output channel ``i`` never falls below ``c_i > 0`` on the calibration
    data, ``b_A ← b_A − c`` and ``b_B ← b_B + W_B·c``. Exact on that data for ``RELU`` and no activation;
    for ``RELU6`` only channels that stay below the clip move. A consumer that pads its input with zeros
    (``SAME`` with a kernel wider than 1) is skipped: ``W_B·c`` would be added where the input is padding."""
    t0 = time.perf_counter()
    pairs, skipped = _pairs(graph)
    lows, highs = _channel_extremes(model, samples, [a.output for a, _ in pairs])
    done: list[dict[str, Any]] = []
    for a, b in pairs:
        kernel = graph.shape(b.weight)[1:3] if b.kind != "FULLY_CONNECTED" else (1, 1)
        if b.same_padding and tuple(kernel) != (1, 1):
            skipped.append({"producer": a.name, "consumer": b.name, "reason": "the consumer pads its input"})
            continue
        if a.bias is None or b.bias is None:
            skipped.append(
                {"producer": a.name, "consumer": b.name, "reason": "no bias to move the offset into"}
            )
            continue
        c = np.maximum(lows[a.output], 0.0).astype(np.float64)
        if a.activation == "RELU6":
            c = np.where(highs[a.output] < RELU6_CLIP * CLIP_MARGIN, c, 0.0)
        if not (c > 0).any():
            continue
        graph.set_bias(a, (graph.bias(a) - c).astype(np.float32))
        wb = graph.weight(b).astype(np.float64)
        if b.depthwise:
            shift = wb.sum(axis=1) * c
        else:
            channels = graph.shape(b.weight)[-1]
            shift = wb.reshape(wb.shape[0], -1, channels).sum(axis=1) @ c
        graph.set_bias(b, (graph.bias(b) + shift).astype(np.float32))
        done.append(
            {
                "producer": a.name,
                "consumer": b.name,
                "channels": int((c > 0).sum()),
                "max_offset": float(c.max()),
            }
        )
    return GraphAbsorptionReport(pairs=done, skipped=skipped, seconds=time.perf_counter() - t0)


def _channel_extremes(
    model: bytes, samples: Sequence[Any], tensors: Sequence[int]
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """One LiteRT pass: each tensor's per-channel minimum and maximum over ``samples``."""
    interp = all_tensors_interpreter(model)
    lows: dict[int, np.ndarray] = {}
    highs: dict[int, np.ndarray] = {}
    for sample in samples:
        feed(interp, sample)
        interp.invoke()
        for t in tensors:
            v = interp.get_tensor(t)
            flat = v.reshape(-1, v.shape[-1])
            lo, hi = flat.min(axis=0), flat.max(axis=0)
            lows[t] = np.minimum(lows[t], lo) if t in lows else lo
            highs[t] = np.maximum(highs[t], hi) if t in highs else hi
    return lows, highs


# --- bias correction ---------------------------------------------------------------------------------
def correct_bias_graph(
    graph: FloatGraph, originals: dict[int, np.ndarray], means: dict[int, np.ndarray]
) -> BiasCorrectionGraphReport:
    """Subtract ``(W_q − W)·E[x]`` from every op's bias, ``W`` from ``originals``, ``W_q`` the int8 grid
    values of the graph's current weights."""
    t0 = time.perf_counter()
    shifts, no_bias = [], []
    count = 0
    for op in graph.ops:
        q, scale = quantize_weight(graph.weight(op))
        dw = q * scale - originals[op.index].astype(np.float64)
        m = means[op.index]
        shift = (dw * m).sum(axis=1) if op.depthwise else dw @ m
        if not graph.set_bias(op, graph.bias(op) - shift.astype(np.float32)):
            no_bias.append(op.name)
            continue
        count += 1
        shifts.append(np.abs(shift).mean())
    return BiasCorrectionGraphReport(
        ops=count,
        no_bias=no_bias,
        mean_shift_before=float(np.mean(shifts)) if shifts else 0.0,
        seconds=time.perf_counter() - t0,
    )


# --- the sequence ------------------------------------------------------------------------------------
def repair_graph(
    model: bytes,
    samples: Sequence[Any],
    fixes: GraphFixes,
    *,
    log: Callable[[str], None] | None = None,
) -> tuple[bytes, GraphRepairReport]:
    """Apply ``fixes``' weight rewrites to a float model (no TensorFlow needed).

    Returns:
        ``(the float model with rewritten weights, report)``; ``model`` itself when nothing rewrites.
    """
    t0 = time.perf_counter()
    if not fixes.rewrites_weights:
        return model, GraphRepairReport(fixes=fixes.names())
    say = log or (lambda _m: None)
    graph = FloatGraph(model)
    eq = None
    if fixes.equalize:
        eq = equalize_graph(graph, model, samples)
        equalized = graph.to_bytes()
        check = list(samples[:CHECK_SAMPLES])
        eq = GraphEqualizationReport(
            pairs=eq.pairs,
            skipped=eq.skipped,
            max_output_diff=max_output_diff(model, equalized, check) if eq.pairs else None,
            seconds=eq.seconds,
        )
        say(f"equalization: {eq.summary()}")
        model = equalized
        graph = FloatGraph(model)
    hb = None
    if fixes.absorb_high_bias:
        hb = absorb_graph(graph, model, samples)
        absorbed = graph.to_bytes()
        if hb.pairs:
            hb = GraphAbsorptionReport(
                pairs=hb.pairs,
                skipped=hb.skipped,
                max_output_diff=max_output_diff(model, absorbed, list(samples[:CHECK_SAMPLES])),
                seconds=hb.seconds,
            )
        say(f"high-bias absorption: {hb.summary()}")
        model = absorbed
        graph = FloatGraph(model)
    ar = bc = None
    if fixes.adaround or fixes.bias_correction:
        originals = {op.index: graph.weight(op) for op in graph.ops}
        moments = input_moments(graph, model, samples, graph.ops)
        if fixes.adaround:
            ar = adaround_graph(graph, moments, log=log)
            say(f"learned rounding: {ar.summary()}")
        if fixes.bias_correction:
            bc = correct_bias_graph(graph, originals, {k: m.mean for k, m in moments.items()})
            say(f"bias correction: {bc.summary()}")
        model = graph.to_bytes()
    return model, GraphRepairReport(
        fixes=fixes.names(),
        equalize=eq,
        absorb_high_bias=hb,
        adaround=ar,
        bias_correction=bc,
        seconds=time.perf_counter() - t0,
    )


def calibrate_float_model(model: bytes, samples: Sequence[Any]) -> bytes:
    """TFLite's calibrator on a float ``.tflite``: the model with each tensor's min/max recorded (what
    the converter's calibrate-only mode gives for a TensorFlow source)."""
    import warnings

    from tensorflow.lite.python.optimize import calibrator

    def gen() -> Any:
        for s in samples:
            yield dict(s) if isinstance(s, dict) else [np.asarray(v, dtype=np.float32) for v in s]

    with native_stderr_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bytes(calibrator.Calibrator(model).calibrate(gen))


def calibrated_graph(
    model: bytes,
    samples: Sequence[Any],
    fixes: GraphFixes,
    *,
    log: Callable[[str], None] | None = None,
) -> tuple[bytes, GraphRepairReport]:
    """:func:`repair_graph`, then calibration and range setting: a model ready for
    :func:`~liteship.quantize.denylist.quantize_calibrated`."""
    repaired, report = repair_graph(model, samples, fixes, log=log)
    calibrated = calibrate_float_model(repaired, samples)
    ranges = None
    if fixes.range_setting != "minmax":
        calibrated, ranges = set_ranges(calibrated, samples, fixes.range_setting)
    return calibrated, GraphRepairReport(
        fixes=report.fixes,
        equalize=report.equalize,
        absorb_high_bias=report.absorb_high_bias,
        adaround=report.adaround,
        bias_correction=report.bias_correction,
        ranges=ranges,
        seconds=report.seconds,
    )


__all__ = [
    "GraphAbsorptionReport",
    "GraphFixes",
    "absorb_graph",
    "GraphRepairReport",
    "calibrate_float_model",
    "calibrated_graph",
    "correct_bias_graph",
    "equalize_graph",
    "max_output_diff",
    "repair_graph",
]
