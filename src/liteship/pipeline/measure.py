"""Convert and measure variants: every configured recipe (in parallel worker processes when it pays),
then each variant's benchmark, validation and (variant, accelerator) pairs. A variant that cannot win
under the latency objective gets a quick benchmark and a short validation instead (pruning)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from liteship.convert import convert
from liteship.convert.sources import source_file
from liteship.errors import LiteshipError
from liteship.pipeline.accelerators import measure_pairs
from liteship.pipeline.context import RunContext
from liteship.pipeline.spec import INTEGER_RECIPES, VariantSpec
from liteship.pipeline.variant import Variant

DOMINANCE_MARGIN = 1.10  # a variant this much slower than a passing float32 baseline cannot win on latency
PRUNED_VALIDATION_SAMPLES = 50
PARALLEL_CONVERT_MIN_BYTES = 4 * 1024 * 1024


def measure_recipes(ctx: RunContext) -> list[Variant]:
    """Convert every configured recipe, then measure each one that converted; returns them in order."""
    ctx.timed("convert", lambda: convert_all(ctx))
    for recipe in ctx.cfg.recipes:
        if recipe in ctx.variants and ctx.variants[recipe].error is None:
            measure(ctx, recipe)
    return [ctx.variant(r) for r in ctx.cfg.recipes]


def add_variant(ctx: RunContext, name: str, spec: VariantSpec) -> Variant:
    """Convert, benchmark and validate one more variant; returns its record (``error`` set on failure)."""
    v = Variant(name, spec)
    try:
        conv = ctx.timed("convert", lambda: _convert(ctx, v))
    except LiteshipError as e:
        ctx.variants[name] = v.replace(error=str(e))
        ctx.log(f"[red]convert  {name}: failed[/] — {e}")
        return ctx.variants[name]
    _converted(ctx, v.replace(conversion=conv))
    return measure(ctx, name)


def convert_all(ctx: RunContext) -> None:
    """Convert every recipe, in parallel worker processes when there are cores to spare: calibration
    runs single-threaded, and on MobileNetV2 the three calibrated recipes take most of the time."""
    recipes = list(ctx.cfg.recipes)
    specs = {r: VariantSpec.configured(r, ctx.cfg) for r in recipes}
    workers = ctx.cfg.convert_workers
    if workers is None:
        # a worker costs a TensorFlow start-up (~5 s): worth it only when conversions are slow, which
        # tracks model size (digits: 70 KB, 1 s per recipe; MobileNetV2: 14 MB, up to 30 s)
        big = _tree_bytes(Path(ctx.exported)) >= PARALLEL_CONVERT_MIN_BYTES
        workers = min(os.cpu_count() or 1, 4) if big else 1
    workers = min(len(recipes), workers)
    if workers <= 1:
        for recipe in recipes:
            v = Variant(recipe, specs[recipe])
            try:
                _converted(ctx, v.replace(conversion=_convert(ctx, v)))
            except LiteshipError as e:
                ctx.variants[recipe] = v.replace(error=str(e))
                ctx.log(f"[red]convert  {recipe}: failed[/] — {e}")
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # the slowest first, so the pool stays busy (calibrated recipes, int16x8 above all)
    order = sorted(recipes, key=lambda r: (r != "int16x8", r not in INTEGER_RECIPES))
    ctx.log(f"convert  {len(recipes)} recipes in {workers} worker processes")
    results: dict[str, tuple[str, Any]] = {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_convert_in_worker, ctx.convert_kwargs(r, specs[r])): r for r in order}
        for fut in as_completed(futures):
            recipe = futures[fut]
            try:
                results[recipe] = fut.result()
            except Exception as e:  # the worker died (out of memory, killed)
                results[recipe] = ("error", f"the conversion worker failed: {type(e).__name__}: {e}")
            status, value = results[recipe]
            if status == "ok":
                ctx.log(
                    f"convert  {recipe:<16} {value.size_bytes / 1024:8.1f} KiB  ({value.conversion_seconds:.1f} s)"
                )
            else:
                ctx.log(f"[red]convert  {recipe}: failed[/] — {value}")
    for recipe in recipes:  # record in config order
        status, value = results[recipe]
        v = Variant(recipe, specs[recipe])
        ctx.variants[recipe] = v.replace(conversion=value) if status == "ok" else v.replace(error=value)


def measure(ctx: RunContext, name: str) -> Variant:
    """Benchmark, then validate one converted variant; returns the updated record."""
    t = time.perf_counter()
    try:
        return _measure(ctx, name)
    finally:
        ctx.measure_seconds[name] = time.perf_counter() - t


def _convert(ctx: RunContext, v: Variant) -> Any:
    kwargs = ctx.convert_kwargs(v.name, v.spec)
    kwargs["progress"] = ctx.progress
    return convert(**kwargs)


def _converted(ctx: RunContext, v: Variant) -> None:
    assert v.conversion is not None
    ctx.variants[v.name] = v
    conv = v.conversion
    ctx.log(f"convert  {v.name:<16} {conv.size_bytes / 1024:8.1f} KiB  ({conv.conversion_seconds:.1f} s)")


def _measure(ctx: RunContext, name: str) -> Variant:
    v = ctx.variants[name]
    path = ctx.path_of(name)
    dominated, probe = _dominated_by_baseline(ctx, name, path)
    try:
        bench = probe or ctx.timed("bench", lambda: ctx.bench(path, quick=False))
    except LiteshipError as e:
        ctx.variants[name] = v.replace(error=f"benchmark failed: {e}")
        ctx.log(f"[red]bench    {name}: {e}[/]")
        return ctx.variants[name]
    v = v.replace(bench=bench, pruned=dominated)
    ctx.variants[name] = v
    entry = v.entry(ctx.selection_threads)
    if entry is not None:
        ctx.log(
            f"bench    {name:<16} p50 {entry.latency.p50_ms:.3f} ms @ {ctx.selection_threads} thread(s)"
            + (" [dim](quick: slower than float32)[/]" if dominated else "")
        )
    try:
        limit = PRUNED_VALIDATION_SAMPLES if dominated else None
        val = ctx.timed("validate", lambda: ctx.validate(path, limit=limit))
    except LiteshipError as e:
        ctx.variants[name] = v.replace(error=f"validation failed to run: {e}")
        ctx.log(f"[red]validate {name}: {e}[/]")
        return ctx.variants[name]
    v = v.replace(validation=val)
    ctx.variants[name] = v
    ctx.log(
        f"validate {name:<16} agreement {_pct(val.agreement_top1)}  "
        f"accuracy {_pct(val.accuracy)}  drop {_num(val.accuracy_drop)} pts"
        + (f" [dim](on {val.samples} samples)[/]" if dominated else "")
    )
    v = v.replace(pairs=measure_pairs(ctx, name, path, limit, dominated is not None))
    ctx.variants[name] = v
    return v


def _dominated_by_baseline(ctx: RunContext, name: str, path: Path) -> tuple[str | None, Any]:
    """Under the latency objective, a variant slower than a float32 baseline that passes every gate
    can never be selected: it gets a quick benchmark and a short validation instead of the full ones
    (on MobileNetV2, int16x8's reference kernels take ~60× float32's time). Returns the reason and
    the quick benchmark."""
    base = ctx.variants.get("none")
    if ctx.cfg.objective != "latency" or name == "none" or base is None or base.bench is None:
        return None, None
    cand = base.candidate(ctx.selection_threads)
    if cand is None or not ctx.gates.check(cand).passed:
        return None, None
    probe = ctx.timed("bench", lambda: ctx.bench(path, quick=True))
    probe_entry = next((e for e in probe.entries if e.threads == ctx.selection_threads), None)
    base_entry = base.entry(ctx.selection_threads)
    if probe_entry is None or base_entry is None:
        return None, None
    # the probe's fastest run: noise only ever adds time, so a minimum above the baseline is real
    if probe_entry.latency.min_ms > base_entry.latency.p50_ms * DOMINANCE_MARGIN:
        return (
            f"even its fastest run ({_ms(probe_entry.latency.min_ms)}) is slower than float32's p50 "
            f"({_ms(base_entry.latency.p50_ms)}), "
            f"so it cannot be selected under the latency objective: quick benchmark, validated on "
            f"at most {PRUNED_VALIDATION_SAMPLES} samples"
        ), probe
    return None, None


def _tree_bytes(path: Path) -> int:
    path = source_file(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _convert_in_worker(kwargs: dict[str, Any]) -> tuple[str, Any]:
    """Run one conversion in a worker process; errors come back as text (exceptions with keyword-only
    constructors do not survive pickling)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    try:
        return "ok", convert(**kwargs)
    except LiteshipError as e:
        return "error", str(e)
    except Exception as e:  # report, don't kill the pool
        return "error", f"internal error ({type(e).__name__}: {e})"


def _ms(value: float) -> str:
    """A latency with enough digits to tell microsecond models apart."""
    return f"{value * 1000:.2f} µs" if value < 0.1 else f"{value:.3f} ms"


def _pct(v: float | None) -> str:
    return "   n/a" if v is None else f"{100 * v:6.2f}%"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


__all__ = ["add_variant", "convert_all", "measure", "measure_recipes"]
