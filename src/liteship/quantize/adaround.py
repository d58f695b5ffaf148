"""Learned rounding of int8 weights: AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for
Post-Training Quantization"), on the float ``.tflite`` graph of any source.

Rounding each weight to its nearest int8 value is optimal per weight, not per layer: what matters is the
layer's output ``W·x`` on real inputs. AdaRound chooses, for every weight, to round down or up so that
the layer's output error on calibration data is smallest. For a linear layer that error is a quadratic
form in the rounding error ``ΔW`` (the paper's layer-wise objective without the activation, its eq. 21):

    E‖ΔW·x‖² = Σ_rows ΔW_row · H · ΔW_rowᵀ,   H = E[x xᵀ] over the op's input patches,

so one pass over the calibration data gives ``H`` for every op at once (a ``k×k`` matrix per depthwise
channel, ``fan_in×fan_in`` otherwise), and the optimisation then runs on ``H`` alone, in numpy. The
rounding is relaxed as ``W̃ = s·(⌊W/s⌋ + h(V))`` with a rectified sigmoid ``h``; Adam minimises the
normalised output error plus ``λ·Σ(1 − |2h − 1|^β)``, with ``β`` annealed from 20 to 2 after a warm-up,
which drives every ``h`` to 0 or 1. Because ``H`` includes the input mean, the learned rounding also
removes the mean shift that plain rounding adds (what bias correction repairs afterwards otherwise).

The result is written back as float weights that lie exactly on TFLite's own int8 grid (per output
channel, ``scale = max|w|/127``; the element that sets the scale is kept, so the grid does not move):
any int8 quantizer that rounds to nearest then stores exactly the learned integers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteship.quantize.tflite_graph import (
    FloatGraph,
    WeightedOp,
    all_tensors_interpreter,
    feed,
    kernel_size,
    patches,
    quantize_weight,
)
from liteship.types import ReportMixin

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (the paper's values)
ITERATIONS = 800
LAMBDA = 0.01
WARMUP = 0.2
LEARNING_RATE = 0.01
BETA = (20.0, 2.0)


@dataclass(frozen=True)
class RoundedOp(ReportMixin):
    """One op's learned rounding.

    Attributes:
        op: The op's output tensor name.
        kind: Its builtin type.
        error_nearest: The output error ``E‖ΔW·x‖²`` of round-to-nearest (summed over channels).
        error_learned: The same after AdaRound (lower is better).
        flipped: Weights rounded the other way than to-nearest.
        weights: Weights in the op.
    """

    op: str
    kind: str
    error_nearest: float
    error_learned: float
    flipped: int
    weights: int

    @property
    def ratio(self) -> float:
        return self.error_learned / self.error_nearest if self.error_nearest > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "kind": self.kind,
            "error_nearest": self.error_nearest,
            "error_learned": self.error_learned,
            "ratio": round(self.ratio, 4),
            "flipped": self.flipped,
            "weights": self.weights,
        }


@dataclass(frozen=True)
class AdaRoundReport(ReportMixin):
    """What learned rounding did: per op, the output error before and after; the time it took."""

    ops: list[RoundedOp] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    samples: int = 0
    iterations: int = ITERATIONS
    seconds: float = 0.0

    @property
    def median_ratio(self) -> float | None:
        return float(np.median([o.ratio for o in self.ops])) if self.ops else None

    def summary(self) -> str:
        if not self.ops:
            return "no op to round"
        return (
            f"{len(self.ops)} op(s), output error ×{self.median_ratio:.2f} of round-to-nearest (median), "
            f"{sum(o.flipped for o in self.ops)} weight(s) rounded the other way, {self.seconds:.1f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ops": [o.to_dict() for o in self.ops],
            "skipped": self.skipped,
            "samples": self.samples,
            "iterations": self.iterations,
            "seconds": round(self.seconds, 2),
            "median_ratio": self.median_ratio,
            "summary": self.summary(),
        }


def output_error(dw: np.ndarray, h: np.ndarray, depthwise: bool) -> float:
    """``Σ_rows ΔW_row·H·ΔW_rowᵀ`` (depthwise: ``H`` per channel)."""
    if depthwise:
        return float(np.einsum("ck,ckl,cl->", dw, h, dw))
    return float(np.einsum("ok,kl,ol->", dw, h, dw))


def _hdw(dw: np.ndarray, h: np.ndarray, depthwise: bool) -> np.ndarray:
    return np.einsum("ckl,cl->ck", h, dw) if depthwise else dw @ h


def learn_rounding(
    w: np.ndarray,
    h: np.ndarray,
    *,
    depthwise: bool = False,
    iterations: int = ITERATIONS,
    lam: float = LAMBDA,
) -> np.ndarray:
    """Learned int8 rounding of ``w`` (``[out, fan_in]``) for inputs with second moment ``h``.

    Args:
        w: Float weights, one row per output channel.
        h: ``E[x xᵀ]``: ``[fan_in, fan_in]``, or ``[out, k, k]`` for a depthwise op (one per channel).
        depthwise: Whether ``h`` is per channel.
        iterations: Adam steps.
        lam: Weight of the rounding regulariser.

    Returns:
        The rounded weights in float, on the same per-channel int8 grid as round-to-nearest.
    """
    q, scale = quantize_weight(w)
    w64 = w.astype(np.float64)
    base = np.floor(w64 / scale)
    rest = w64 / scale - base
    pinned = np.abs(w64 / scale) >= 127 - 1e-6  # the elements that set each channel's scale
    v = -np.log((ZETA - GAMMA) / (np.clip(rest, 1e-4, 1 - 1e-4) - GAMMA) - 1)
    norm = max(output_error(q * scale - w64, h, depthwise), 1e-30)
    m = np.zeros_like(v)
    s2 = np.zeros_like(v)
    warm = int(iterations * WARMUP)
    for t in range(1, iterations + 1):
        sig = 1 / (1 + np.exp(-v))
        soft = sig * (ZETA - GAMMA) + GAMMA
        hv = np.clip(soft, 0, 1)
        wt = np.where(pinned, q, base + hv) * scale
        grad_h = 2 * _hdw(wt - w64, h, depthwise) * scale / norm
        if t > warm:
            beta = BETA[1] + (BETA[0] - BETA[1]) * (1 - (t - warm) / max(iterations - warm, 1))
            u = 2 * hv - 1
            grad_h += lam * (-beta * np.abs(u) ** (beta - 1) * np.sign(u) * 2) / w.size * 100
        grad_v = np.where((soft > 0) & (soft < 1) & ~pinned, grad_h * sig * (1 - sig) * (ZETA - GAMMA), 0.0)
        m = 0.9 * m + 0.1 * grad_v
        s2 = 0.999 * s2 + 0.001 * grad_v**2
        v -= LEARNING_RATE * (m / (1 - 0.9**t)) / (np.sqrt(s2 / (1 - 0.999**t)) + 1e-8)
    hard = (np.clip((1 / (1 + np.exp(-v))) * (ZETA - GAMMA) + GAMMA, 0, 1) >= 0.5).astype(np.float64)
    ints = np.where(pinned, q, np.clip(base + hard, -127, 127))
    learned = ints * scale
    if output_error(learned - w64, h, depthwise) > norm:  # never worse than to-nearest
        return (q * scale).astype(np.float32)
    return learned.astype(np.float32)


@dataclass
class _Moments:
    """Running sums of the input patches of one op: ``Σ x xᵀ``, ``Σ x`` and the row count."""

    xx: np.ndarray
    x: np.ndarray
    n: int = 0

    def add(self, rows: np.ndarray, depthwise: bool) -> None:
        if depthwise:  # [P, k, C]
            self.xx += np.einsum("pkc,plc->ckl", rows, rows)
            self.x += rows.sum(axis=0).T
        else:
            self.xx += rows.T @ rows
            self.x += rows.sum(axis=0)
        self.n += len(rows)

    @property
    def second(self) -> np.ndarray:
        return self.xx / max(self.n, 1)

    @property
    def mean(self) -> np.ndarray:
        return self.x / max(self.n, 1)


def input_moments(
    graph: FloatGraph, model: bytes, samples: Sequence[Any], ops: Sequence[WeightedOp], positions: int = 256
) -> dict[int, _Moments]:
    """One LiteRT pass over ``samples``: each op's input second moment and mean over its patches (up to
    ``positions`` random output positions per sample)."""
    interp = all_tensors_interpreter(model)
    moments: dict[int, _Moments] = {}
    for op in ops:
        k = int(np.prod(kernel_size(graph, op)))
        fan_in = graph.weight(op).shape[1]
        if op.depthwise:
            c = graph.weight(op).shape[0]
            moments[op.index] = _Moments(np.zeros((c, k, k)), np.zeros((c, k)))
        else:
            moments[op.index] = _Moments(np.zeros((fan_in, fan_in)), np.zeros(fan_in))
    for s, sample in enumerate(samples):
        feed(interp, sample)
        interp.invoke()
        for op in ops:
            x = interp.get_tensor(op.input)
            rows = patches(op, x, kernel_size(graph, op), positions, seed=s)
            moments[op.index].add(rows, op.depthwise)
    return moments


def adaround_graph(
    graph: FloatGraph,
    moments: dict[int, _Moments],
    *,
    iterations: int = ITERATIONS,
    log: Callable[[str], None] | None = None,
) -> AdaRoundReport:
    """Learn the int8 rounding of every weighted op of ``graph`` in place, from each op's input moments
    (:func:`input_moments`)."""
    t0 = time.perf_counter()
    rounded_ops = []
    for op in graph.ops:
        w = graph.weight(op)
        h = moments[op.index].second
        q, scale = quantize_weight(w)
        learned = learn_rounding(w, h, depthwise=op.depthwise, iterations=iterations)
        before = output_error(q * scale - w, h, op.depthwise)
        after = output_error(learned.astype(np.float64) - w, h, op.depthwise)
        flipped = int((np.round(learned / scale) != q).sum())
        graph.set_weight(op, learned)
        rounded_ops.append(RoundedOp(op.name, op.kind, before, after, flipped, int(w.size)))
        if log:
            log(
                f"  adaround {op.kind} {op.name.split(';')[0][-48:]}: output error ×{rounded_ops[-1].ratio:.2f}"
            )
    return AdaRoundReport(
        ops=rounded_ops,
        skipped=[{"op": n, "reason": r} for n, r in graph.skipped],
        samples=max((m.n for m in moments.values()), default=0),
        iterations=iterations,
        seconds=time.perf_counter() - t0,
    )


def adaround(
    model: bytes,
    samples: Sequence[Any],
    *,
    iterations: int = ITERATIONS,
    log: Callable[[str], None] | None = None,
) -> tuple[bytes, AdaRoundReport]:
    """Learn the int8 rounding of every conv / depthwise / fully connected op of a float model.

    Args:
        model: A float ``.tflite`` (any source's float model).
        samples: Calibration inputs, model-ready (see :func:`liteship.quantize.tflite_graph.feed`).
        iterations: Adam steps per op.
        log: Progress lines.

    Returns:
        ``(the float model with its weights on the learned int8 grid, report)``.
    """
    graph = FloatGraph(model)
    report = adaround_graph(
        graph, input_moments(graph, model, samples, graph.ops), iterations=iterations, log=log
    )
    return graph.to_bytes(), report


__all__ = [
    "AdaRoundReport",
    "RoundedOp",
    "adaround",
    "adaround_graph",
    "input_moments",
    "learn_rounding",
    "output_error",
]
