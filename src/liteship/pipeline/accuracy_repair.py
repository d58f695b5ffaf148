"""Accuracy repair: an integer variant fails the accuracy gates → graph fixes first, then the search.

0. **The inputs' own limit** (:class:`~liteship.pipeline.report.InputCeiling`): the float model fed its
   inputs rounded to the integer variant's input grid. When even that fails the gates, no variant with
   integer inputs can pass: with no ``io_type`` asked for, the repair's variants take float32 model I/O
   (``<base>+fio…``: the first op quantizes on the device instead of the caller); with ``io_type`` set to
   an integer type, the repair stops there and says so.
1. **Fixes** (``auto_mixed_precision.repair``, cumulatively in order): ``<base>+pct`` (activation
   ranges clipped to the 99.99th percentile; ``range_mse``: least expected int8 error), ``<base>+pct+eq``
   (cross-layer equalization), ``<base>+pct+eq+bc`` (+ bias correction). Each is a full variant; the first that passes the accuracy gates ends the repair
   with no layer in float. A fix that does not raise the score is dropped before the next one.
2. **Search** (``liteship.quantize.search``) from the best of those: a minimal set of ops kept in float,
   each round judged with the gate's own metric on the validation set; the winner becomes
   ``<base>+mixed`` and is measured like every other variant.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from liteship.convert.frontends import fix_problem
from liteship.convert.ops import io_specs
from liteship.errors import LiteshipError
from liteship.model.flatbuffer import load_model
from liteship.pipeline.gates import Candidate
from liteship.pipeline.measure import add_variant
from liteship.pipeline.report import AccuracyRepairReport, Cost, FixAttempt, InputCeiling
from liteship.pipeline.spec import FLOAT_IO, KERAS_FIXES, RANGE_FIXES, SHORT
from liteship.quantize.backends import DenylistBackend
from liteship.quantize.graph import clone
from liteship.quantize.search import Budget, Measurement, Round, search_float_layers
from liteship.runtime.input_grid import InputGridRunner

if TYPE_CHECKING:
    from liteship.pipeline.context import RunContext


def repair_accuracy(run: RunContext) -> AccuracyRepairReport:
    """Repair the configured integer variant of ``run`` when it fails the accuracy gates."""
    t0 = time.perf_counter()
    amp = run.cfg.auto_mixed_precision
    order = [amp.recipe] + [r for r in ("int8-fallback", "int8") if r != amp.recipe]
    base = next((r for r in order if r in run.variants and run.variants[r].measured), None)
    if base is None:
        why = "no int8 or int8-fallback variant was converted and validated"
        run.log(f"[yellow]mixed precision skipped[/]: {why}")
        return AccuracyRepairReport(base=None, skipped=why)
    if base != amp.recipe:
        run.log(f"mixed precision starts from {base} ({amp.recipe} is not among the variants)")
    if run.passes_accuracy(base):
        run.log(f"accuracy repair not needed: {base} already passes the accuracy gates (no fix, no search)")
        return AccuracyRepairReport(base=base, skipped=f"{base} already passes the accuracy gates")
    run.log(f"[bold]mixed precision[/] {base} fails the accuracy gates; trying graph fixes, then the search")
    ceiling = _input_ceiling(run, base)
    start: tuple[str, ...] = ()
    if ceiling is not None and not ceiling.passed:
        figures = _figures(ceiling.agreement, ceiling.accuracy, ceiling.sqnr_db)
        if run.cfg.io_type is not None:
            why = (
                f"no variant with {ceiling.input_type} inputs can pass: the float model itself, fed its inputs "
                f"rounded to {base}'s input grid, fails the accuracy gates ({figures}; "
                f"{'; '.join(ceiling.failures)}). Set io_type: float32 (or remove io_type) to let the repair "
                "keep float inputs"
            )
            run.log(f"[yellow]mixed precision stopped[/]: {why}")
            run.warnings.append(f"accuracy repair: {why}")
            return AccuracyRepairReport(
                base=base, skipped=why, input_ceiling=ceiling, seconds=time.perf_counter() - t0
            )
        run.log(
            f"repair   the float model, its inputs rounded to {ceiling.input_type} as {base} rounds them, fails "
            f"the gates too ({figures}): the repair's variants take float32 model I/O"
        )
        start = (FLOAT_IO,)
    budget = _Overhead.of(run, base, t0)
    attempts, best = _graph_fixes(run, base, budget, start)
    winner = next((a.variant for a in attempts if a.passed), None)
    search = None
    if winner is None and amp.search:
        search, winner = _search(run, base, best, budget)
    name = winner
    floats = list(run.variants[name].float_layers) if name else []
    return AccuracyRepairReport(
        base=base,
        attempts=attempts,
        search=search,
        recipe=name if name and run.passes_accuracy(name) else None,
        float_layers=floats,
        cost=_cost(run, base, name) if name else None,
        seconds=time.perf_counter() - t0,
        input_ceiling=ceiling,
        io_type="float32" if start else None,
    )


def _figures(agreement: float | None, accuracy: float | None, sqnr_db: float | None) -> str:
    parts = [f"agreement {100 * agreement:.1f}%" if agreement is not None else None]
    parts.append(f"accuracy {100 * accuracy:.1f}%" if accuracy is not None else None)
    parts.append(f"SQNR {sqnr_db:.1f} dB" if sqnr_db is not None and math.isfinite(sqnr_db) else None)
    return ", ".join(p for p in parts if p)


def _input_ceiling(run: RunContext, base: str) -> InputCeiling | None:
    """The float model on ``base``'s input grid, measured on the whole validation set; ``None`` when
    ``base`` has float inputs or there is no float model to run (the float32 variant, else the
    reference runner)."""
    grids, _ = io_specs(load_model(run.path_of(base).read_bytes()))
    if not any(g.quantized for g in grids):
        return None
    none = run.variants.get("none")
    own = None
    try:
        if none is not None and none.measured:
            from liteship.runtime import LiteRTRunner

            own = LiteRTRunner(run.path_of("none"), num_threads=run.selection_threads)
        val = run.validate(InputGridRunner(own or run.reference, grids), quiet=True)
    except LiteshipError as e:
        run.log(f"[yellow]repair[/]: the inputs' own limit was not measured ({e})")
        return None
    finally:
        if own is not None:
            own.close()
    nums = val.summary()
    verdict = run.gates.accuracy().check(Candidate.from_summary("input-grid", nums, size_bytes=0))
    return InputCeiling(
        input_type=grids[0].dtype,
        passed=verdict.passed,
        accuracy=nums.get("accuracy"),
        agreement=nums.get("agreement_top1"),
        sqnr_db=nums.get("sqnr_db"),
        failures=list(verdict.failures),
    )


@dataclass(frozen=True)
class _Overhead:
    """``auto_mixed_precision.max_overhead``: the repair's deadline, relative to the plain run before it.

    ``step`` is what one more variant costs (the base variant's conversion, bench and validation, as
    measured), so a fix starts only when it can finish in time, and the search keeps that much back for
    converting and validating its winner.
    """

    deadline: float | None
    step: float
    label: str = ""

    @classmethod
    def of(cls, run: RunContext, base: str, now: float) -> _Overhead:
        factor = run.cfg.auto_mixed_precision.max_overhead
        v = run.variants[base]
        step = (v.conversion.conversion_seconds if v.conversion else 0.0) + run.measure_seconds.get(base, 0.0)
        if factor is None:
            return cls(None, step)
        plain = now - run.started
        return cls(
            now + factor * plain, step, f"max_overhead {factor:g}× the {plain:.0f} s before the repair"
        )

    def left(self) -> float:
        """Seconds left before the deadline (``inf`` without one)."""
        return math.inf if self.deadline is None else self.deadline - time.perf_counter()


def _graph_fixes(
    run: RunContext, base: str, budget: _Overhead, start: Sequence[str] = ()
) -> tuple[list[FixAttempt], str]:
    """Try each configured fix on top of the previous ones (after the ``start`` ones, which are always
    kept: ``float_io``); returns the attempts and the best variant."""
    amp = run.cfg.auto_mixed_precision
    applied = list(run.variants[base].fixes)
    attempts: list[FixAttempt] = []
    best, best_score = base, score_of(run, base)
    longest = 0.0
    kept = set(start)
    queue = [*start, *amp.repair]
    retried: set[str] = set()
    position = 0
    while position < len(queue):
        fix = queue[position]
        position += 1
        if fix in applied:
            continue
        applied.append(fix)
        name = "+".join([base, *(SHORT[f] for f in applied)])
        # one more fix costs what the slowest so far did (at least the base variant's conversion and
        # measurement); bias correction runs the model over the calibration set first: twice that; learned
        # rounding optimises every layer too: three times
        cost = max(budget.step, longest) * {"bias_correction": 2, "adaround": 3}.get(fix, 1)
        if budget.left() < cost:
            why = f"the repair budget is spent ({budget.label}; this fix would take ~{cost:.0f} s)"
            attempts.append(FixAttempt(name, list(applied), False, error=why))
            run.log(f"[yellow]repair   {name}: skipped[/] — {why}")
            applied.remove(fix)
            break
        problem = fix_problem(str(run.source), fix) if fix in KERAS_FIXES else None
        if fix in RANGE_FIXES and (
            other := next((f for f in applied if f in RANGE_FIXES and f != fix), None)
        ):
            problem = f"{other} already sets the activation ranges (a variant has one range setting)"
        if problem:
            attempts.append(FixAttempt(name, list(applied), False, error=problem))
            run.log(f"[yellow]repair   {name}: skipped[/] — {problem}")
            applied.remove(fix)
            continue
        nothing = _nothing_to_do(run, fix)
        if nothing:
            attempts.append(FixAttempt(name, list(applied), False, error=nothing))
            run.log(f"repair   {name}: skipped — {nothing}")
            applied.remove(fix)
            continue
        started = time.perf_counter()
        v = add_variant(run, name, run.variants[base].spec.with_fixes(applied))
        longest = max(longest, time.perf_counter() - started)
        passed = run.passes_accuracy(name)
        nums = v.summary()
        attempts.append(
            FixAttempt(
                name,
                list(applied),
                passed,
                accuracy=nums.get("accuracy"),
                agreement=nums.get("agreement_top1"),
                sqnr_db=nums.get("sqnr_db"),
                error=v.error,
            )
        )
        run.log(f"repair   {name}: {'passes the accuracy gates' if passed else 'still fails'}")
        if v.measured and (fix in kept or score_of(run, name) > best_score):
            best, best_score = name, score_of(run, name)
        elif not passed:  # made nothing better: the next fixes (and the search) go on without it
            applied.remove(fix)
            if fix in REPARAMETRISING and fix not in retried and position < len(queue):
                retried.add(fix)  # a second chance on top of the fixes after it
                queue.append(fix)
        if passed:
            break
    return attempts, best


# Fixes that leave the float model as it is (a reparametrisation): their gain may show only with the weight
# fixes after them (on MobileNetV1 equalization alone loses one validation sample of agreement, while
# equalization + AdaRound + bias correction gains 8 points over AdaRound + bias correction): one that did
# not help is tried once more on top of the best combination, at the end (benchmarks/RESULTS.md).
REPARAMETRISING = ("equalize",)


def _nothing_to_do(run: RunContext, fix: str) -> str | None:
    """Why ``fix`` would leave the model as it is (so converting it again would be wasted), or ``None``."""
    model = getattr(getattr(run.reference, "inner", None), "model", None)
    if model is None:
        return None

    model = clone(model)  # the reference runner has called it: a fresh graph has one node per layer
    if fix == "equalize":
        from liteship.quantize.equalize import find_pairs

        pairs, skipped = find_pairs(model)
        if not pairs:
            return f"no layer pair can be equalized ({_reasons(skipped)})"
    if fix == "absorb_high_bias":
        from liteship.quantize.absorb import eligible_pairs

        eligible, skipped = eligible_pairs(model)
        if not eligible:
            return f"no layer pair can absorb a high bias ({_reasons(skipped)})"
    if fix == "bias_correction":
        from liteship.quantize.bias import targets

        if not targets(model):
            return "no Conv/Dense layer with a bias (or followed by BatchNormalization) to correct"
    return None


def _reasons(skipped: Sequence[Any]) -> str:
    """The first three distinct reasons pairs were skipped for (``SkippedPair.reason`` up to its colon)."""
    return "; ".join(sorted({s.reason.split(":")[0] for s in skipped})[:3]) or "no Conv/Dense pairs"


def gate_metric(run: RunContext, summary: dict[str, Any]) -> tuple[str, float]:
    """The gate that is tightest and a score (higher is better): the smallest normalised margin over the
    accuracy gates that apply — accuracy drop (labels), top-1 agreement (classifiers), output SQNR.

    Each margin is ``(figure − threshold) / scale`` with the threshold's own scale (points of drop, the
    agreement still allowed to be lost, dB), so 0 is exactly at a threshold and > 0 passes it. Scoring on
    the tightest gate makes the search work on the gate that fails: a model whose int8 variant meets the
    accuracy-drop gate but misses agreement is searched on agreement (MobileNetV2, issue 9). With no
    accuracy gate at all the score is the worst output SQNR in dB.
    """
    g = run.cfg.gates
    margins: list[tuple[float, str]] = []
    drop, agree, sqnr = summary.get("accuracy_drop"), summary.get("agreement_top1"), summary.get("sqnr_db")
    if g.max_accuracy_drop is not None and drop is not None:
        margins.append(((g.max_accuracy_drop - float(drop)) / max(g.max_accuracy_drop, 0.5), "accuracy_drop"))
    if g.min_agreement is not None and agree is not None:
        margins.append(((float(agree) - g.min_agreement) / max(1.0 - g.min_agreement, 0.005), "agreement"))
    if g.min_sqnr is not None:
        value = -math.inf if sqnr is None else (float(sqnr) if math.isfinite(sqnr) else 1e9)
        margins.append(((value - g.min_sqnr) / max(abs(g.min_sqnr), 1.0), "sqnr_db"))
    if margins:
        score, metric = min(margins)
        return metric, score
    if sqnr is None:
        return "sqnr_db", -math.inf
    return "sqnr_db", float(sqnr) if math.isfinite(sqnr) else 1e9


def score_of(run: RunContext, name: str) -> float:
    return gate_metric(run, run.variants[name].summary())[1]


def _search(
    run: RunContext, base: str, start: str, budget: _Overhead
) -> tuple[dict[str, Any] | None, str | None]:
    amp = run.cfg.auto_mixed_precision
    spec = run.variants[start].spec
    if budget.left() < 2 * budget.step:
        why = f"the repair budget is spent ({budget.label}): no time for a search and its winner's conversion"
        run.log(f"[yellow]search   skipped[/] — {why}")
        run.warnings.append(f"the float-layer search did not run: {why}")
        return {"error": why}, None
    try:
        backend = run.timed(
            "search",
            lambda: DenylistBackend(
                str(run.source if spec.rewrites_weights else run.exported),
                **spec.fix_options(),
                **run.calibration_kwargs(),
            ),
        )
        ops = backend.ops()
        prerank = _prerank(run, base) if len(ops) > amp.probe else []
        first: list[str] = []
        if spec.float_io:  # the inputs' own limit failed: the ops reading the input go float first
            first = backend.input_ops()
            prerank = first + [n for n in (prerank or [o.name for o in ops]) if n not in first]
        run.log(
            f"search   from {start}: {len(ops)} quantizable ops"
            + (f", the {len(first)} reading the model input first" if spec.float_io else "")
            + (
                f", measuring the {amp.probe} worst by per-layer error one by one"
                if len(ops) > amp.probe
                else ""
            )
        )
        evaluate = _Evaluator(run)
        result = run.timed(
            "search",
            lambda: search_float_layers(
                backend,
                evaluate,
                budget=Budget(
                    rounds=amp.max_rounds, seconds=max(1.0, min(amp.max_seconds, budget.left() - budget.step))
                ),
                prerank=prerank,
                probe=amp.probe,
                beam=amp.beam,
                progress=lambda r: _log_round(run, r),
            ),
        )
    except LiteshipError as e:
        run.log(f"[red]search failed[/] — {e}")
        run.warnings.append(f"the float-layer search failed: {e}")
        return {"error": str(e)}, None
    run.log(f"search   {result.label} ({result.seconds:.1f} s)")
    if not result.float_layers:
        return result.to_dict(), None
    name = f"{base}+fio+mixed" if spec.float_io else f"{base}+mixed"
    v = add_variant(run, name, dataclasses.replace(spec, keep_float=tuple(result.float_layers)))
    if v.error:
        return result.to_dict(), None
    return result.to_dict(), name


def _prerank(run: RunContext, base: str) -> list[str]:
    """Op names worst first by QuantizationDebugger's scale-normalized RMSE (cheap: one debug run)."""
    try:
        report = run.validate(run.path_of(base), layerwise=True, limit=run.cfg.auto_mixed_precision.samples)
    except LiteshipError as e:
        run.log(f"[yellow]search[/]: no per-layer pre-ranking ({e}); graph order instead")
        return []
    return [row.name for row in report.layerwise]


class _Evaluator:
    """One search round: validate the model bytes (and a quick benchmark) like the gate does."""

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.path = run.out / "work" / "search" / "candidate.tflite"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, model: bytes, keep: tuple[str, ...]) -> Measurement:
        run = self.run
        self.path.write_bytes(model)
        val = run.validate(self.path, limit=run.cfg.auto_mixed_precision.samples, quiet=True)
        bench = run.bench(self.path, quick=True)
        entry = next((e for e in bench.entries if e.threads == run.selection_threads), None)
        nums = val.summary()
        cand = Candidate.from_summary(
            "round", nums, size_bytes=len(model), p50_ms=entry.latency.p50_ms if entry else None
        )
        verdict = run.gates.accuracy().check(cand)
        metric, score = gate_metric(run, nums)
        return Measurement(
            passed=verdict.passed,
            score=score,
            metric=metric,
            accuracy=nums["accuracy"],
            accuracy_drop=nums["accuracy_drop"],
            agreement=nums["agreement_top1"],
            sqnr_db=nums["sqnr_db"],
            p50_ms=cand.p50_ms,
            size_bytes=len(model),
            failures=tuple(verdict.failures),
        )


def short_name(op: str | None) -> str:
    """A readable op name: the first of the ``;``-joined names TFLite gives a fused op."""
    return "–" if not op else op.split(";")[0]


def _log_round(run: RunContext, r: Round) -> None:
    m = r.measurement
    figure = {
        "accuracy_drop": f"drop {m.accuracy_drop:.2f} pts" if m.accuracy_drop is not None else "drop n/a",
        "agreement": f"agreement {100 * m.agreement:.2f}%" if m.agreement is not None else "agreement n/a",
    }.get(m.metric, f"SQNR {m.sqnr_db:.1f} dB" if m.sqnr_db is not None else "SQNR n/a")
    run.log(
        f"search   round {r.index:>3} {r.phase:<13} {short_name(r.layer)[:40]:<40} "
        f"{len(r.float_layers)} float  {figure}  {'[green]pass[/]' if m.passed else 'fail'}"
    )


def _cost(run: RunContext, base: str, name: str) -> Cost:
    v, b, f = run.variants[name], run.variants.get(base), run.variants.get("none")
    t = run.selection_threads

    def ratio(x: float | None, y: float | None) -> float | None:
        return x / y if x is not None and y else None

    def p50(var: Any) -> float | None:
        e = var.entry(t) if var is not None else None
        return e.latency.p50_ms if e else None

    def size(var: Any) -> int | None:
        return var.conversion.size_bytes if var is not None and var.conversion is not None else None

    nv, nb = v.summary(), b.summary() if b else {}
    metric = (
        "accuracy" if nv.get("accuracy") is not None and nb.get("accuracy") is not None else "agreement_top1"
    )
    recovered = None
    if nv.get(metric) is not None and nb.get(metric) is not None:
        recovered = 100 * (nv[metric] - nb[metric])
    return Cost(
        float_layers=len(v.float_layers),
        size_bytes=size(v),
        size_vs_int8=ratio(size(v), size(b)),
        size_vs_float32=ratio(size(v), size(f)),
        p50_ms=p50(v),
        latency_vs_int8=ratio(p50(v), p50(b)),
        latency_vs_float32=ratio(p50(v), p50(f)),
        accuracy_recovered=recovered,
        recovered_metric=metric,
    )


__all__ = ["repair_accuracy", "gate_metric", "short_name"]
