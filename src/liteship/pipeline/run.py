"""``run_pipeline``: prepare → convert and measure → select (→ accuracy repair → select) → device
selection → metadata and package → reports. Each stage is a module taking the run's
:class:`~liteship.pipeline.context.RunContext` and returning a typed value."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liteship.errors import GateFailed
from liteship.pipeline.config import PipelineConfig, load_config
from liteship.pipeline.context import QUICK_RUNS, Log, RunContext
from liteship.pipeline.measure import measure_recipes
from liteship.pipeline.prepare import open_context, prepare
from liteship.pipeline.repair import repair_accuracy
from liteship.pipeline.report import AccuracyRepairReport, PipelineReport
from liteship.pipeline.select import Selection, Verdict, select_candidates
from liteship.pipeline.ship import Shipped, ship, write_reports

if TYPE_CHECKING:
    from liteship.pipeline.device_select import DeviceSelection

__all__ = ["run_pipeline", "QUICK_RUNS"]


def _default_log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(msg)


def run_pipeline(
    config: str | Path | dict[str, Any] | PipelineConfig,
    *,
    log: Log | None = None,
    progress: bool = True,
    raise_on_gate: bool = True,
) -> PipelineReport:
    """Run the whole pipeline described by ``liteship.yaml``.

    Args:
        config: Path to the YAML file, a dict, or a :class:`PipelineConfig`.
        log: Receives one line per stage step. Defaults to rich on stderr.
        progress: Draw progress bars for long steps. Defaults to ``True``.
        raise_on_gate: Raise :class:`GateFailed` (exit 3) when no variant passes the gates, after
            writing the reports. Defaults to ``True``.

    Returns:
        The :class:`PipelineReport` (also written to ``<output>/report.json`` and ``report.html``).

    Raises:
        UsageError: Invalid configuration or missing inputs.
        GateFailed: No variant passes the gates (each variant's failing gates are listed).
    """
    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    ctx = open_context(cfg, log or _default_log, progress)
    prepare(ctx)
    measure_recipes(ctx)
    selection = select_candidates(ctx)
    repair = None
    if cfg.auto_mixed_precision.enabled:
        repair = ctx.timed("mixed precision", lambda: repair_accuracy(ctx))
        if repair.attempts or repair.search:
            selection = select_candidates(ctx)
    devices = _device_selection(ctx, selection)
    chosen = devices.chosen if devices is not None and not devices.fallback else selection.chosen
    # devices time the Interpreter; otherwise the chosen pair's accelerator (None: the Interpreter)
    accelerator = selection.chosen_accelerator if chosen == selection.chosen else None
    shipped = ship(ctx, chosen, accelerator) if chosen is not None else Shipped()
    shutil.rmtree(ctx.out / "work", ignore_errors=True)  # the scratch export and search models
    report = build_report(ctx, selection, chosen, accelerator, repair, shipped, devices)
    write_reports(report)
    if shipped.error is not None:
        raise shipped.error
    if chosen is None and raise_on_gate:
        failures = [f"{r}: {'; '.join(f)}" for r, f in selection.failures_by_recipe.items()]
        raise GateFailed(
            f"no variant passes the gates; nothing was packaged (reports: {ctx.out / 'report.html'}).",
            failures=failures,
            report=report,
        )
    return report


def _device_selection(ctx: RunContext, selection: Selection) -> DeviceSelection | None:
    """With ``bench.devices``: benchmark the variants on those devices and select on their figures."""
    if not ctx.cfg.bench.devices:
        return None
    from liteship.pipeline.device_select import select_in_pipeline

    verdicts = {v.recipe: v for v in selection.verdicts}
    rows = [ctx.variant(n).result(verdicts.get(n), ctx.selection_threads).to_dict() for n in ctx.all_names()]
    report = {"variants": rows, "gates": ctx.gates.to_dict(), "objective": ctx.cfg.objective}
    return ctx.timed(
        "device bench",
        lambda: select_in_pipeline({**report, "chosen": selection.chosen}, ctx.cfg.bench, ctx.log),
    )


def build_report(
    ctx: RunContext,
    selection: Selection,
    chosen: str | None,
    accelerator: str | None,
    repair: AccuracyRepairReport | None,
    shipped: Shipped,
    devices: DeviceSelection | None,
) -> PipelineReport:
    """The run's :class:`PipelineReport` from its context and the stages' results."""
    t = ctx.selection_threads
    verdicts = {v.recipe: v for v in selection.verdicts if v.accelerator is None}
    pair_verdicts: dict[tuple[str, str | None], Verdict] = {
        (v.recipe, v.accelerator): v for v in selection.verdicts if v.accelerator
    }
    names = ctx.all_names()
    return PipelineReport(
        model_id=ctx.cfg.model_id,
        version=ctx.cfg.version,
        source=str(ctx.source),
        output_dir=str(ctx.out),
        objective=ctx.cfg.objective,
        selection_threads=t,
        variants=[ctx.variant(n).result(verdicts.get(n), t) for n in names],
        chosen=chosen,
        chosen_model=str(shipped.model) if shipped.model else None,
        package=shipped.package,
        metadata=shipped.metadata,
        mixed_precision=repair,
        layerwise=None,
        gates=ctx.gates.to_dict(),
        stage_seconds=ctx.stage_seconds,
        total_seconds=time.perf_counter() - ctx.started,
        report_json=str(ctx.out / "report.json"),
        report_html=str(ctx.out / "report.html"),
        warnings=ctx.warnings,
        accelerator_pairs=[
            r for n in names if n in ctx.variants for r in ctx.variants[n].pair_results(pair_verdicts, t)
        ],
        chosen_accelerator=accelerator if chosen is not None else None,
        preprocessing={**ctx.rule.to_dict(), "text": ctx.rule_text},
        source_normalization=ctx.source_normalization,
        device_selection=devices,
    )
