"""``run_pipeline``: prepare → convert and measure → select (→ accuracy repair → select) → device
selection → metadata and package → reports. Each stage is a module taking the run's
:class:`~liteship.pipeline.context.RunContext` and returning a typed value."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liteship.errors import GateFailed
from liteship.pipeline.accuracy_repair import repair_accuracy
from liteship.pipeline.config import PipelineConfig, load_config
from liteship.pipeline.context import QUICK_RUNS, Log, RunContext
from liteship.pipeline.measure import measure_recipes
from liteship.pipeline.prepare import open_context, prepare
from liteship.pipeline.report import AccuracyRepairReport, PipelineReport
from liteship.pipeline.select import Selection, Verdict, select_candidates
from liteship.pipeline.ship import Shipped, plan_release_variants, ship, write_reports

if TYPE_CHECKING:
    from liteship.pipeline.device_gate import DeviceGate, Queued
    from liteship.pipeline.device_profile import DeviceProfile
    from liteship.pipeline.device_select import DeviceSelection

__all__ = ["run_pipeline", "group_choices", "QUICK_RUNS"]


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
    rows = _report_rows(ctx, selection)
    queued = _queue_device_validation(ctx, rows)  # first: the devices validate and bench in one visit
    devices = _device_selection(ctx, rows, selection)
    validation = _device_validation(ctx, rows, queued, devices)
    chosen = devices.chosen if devices is not None and not devices.fallback else selection.chosen
    groups = group_choices(devices, validation)
    plan = plan_release_variants(selection.chosen or chosen, groups) if chosen is not None else []
    if plan:  # the groups chose different variants: a release of variants, the workstation's the default
        chosen = next(p.recipe for p in plan if p.default)
    elif len(set(groups.values()) - {None}) == 1 and validation is not None and not validation.fallback:
        chosen = next(c for c in groups.values() if c is not None)  # every gated group agrees
    # devices time the Interpreter; otherwise the chosen pair's accelerator (None: the Interpreter)
    accelerator = selection.chosen_accelerator if chosen == selection.chosen else None
    shipped = ship(ctx, chosen, accelerator, plan) if chosen is not None else Shipped()
    profile = _device_profile(ctx, [p.recipe for p in plan] or ([chosen] if chosen else []))
    shutil.rmtree(ctx.out / "work", ignore_errors=True)  # the scratch export and search models
    report = build_report(
        ctx, selection, chosen, accelerator, repair, shipped, devices, validation, groups, profile
    )
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
    if validation is not None and validation.failed_groups and raise_on_gate:
        failed = {g.group: g for g in validation.groups if g.chosen is None}
        raise GateFailed(
            f"no variant passes the gates on the devices of {', '.join(failed)}; the reports"
            + (" and packages are" if shipped.package else " are")
            + f" written, but do not release to those devices (reports: {ctx.out / 'report.html'}).",
            failures=[f"{n} {r}: {'; '.join(w)}" for n, g in failed.items() for r, w in g.excluded.items()],
            report=report,
        )
    return report


def _report_rows(ctx: RunContext, selection: Selection) -> dict[str, Any]:
    """The measured variants as the device stages read them (report.json's rows, gates, objective)."""
    verdicts = {v.recipe: v for v in selection.verdicts if v.accelerator is None}
    rows = [ctx.variant(n).result(verdicts.get(n), ctx.selection_threads).to_dict() for n in ctx.all_names()]
    return {
        "variants": rows,
        "gates": ctx.gates.to_dict(),
        "objective": ctx.cfg.objective,
        "source": str(ctx.source),
        "chosen": selection.chosen,
    }


def _queue_device_validation(ctx: RunContext, rows: dict[str, Any]) -> Queued | None:
    """With ``validation.devices`` (else ``bench.devices``): queue a validation job of the variants."""
    devices = ctx.cfg.validation_devices
    if not devices:
        return None
    from liteship.pipeline.device_gate import queue_in_pipeline

    return ctx.timed(
        "device validation",
        lambda: queue_in_pipeline(
            rows,
            data=ctx.cfg.path(ctx.cfg.validation.data),
            devices=devices,
            samples=ctx.cfg.validation.samples,
            log=ctx.log,
        ),
    )


def _device_validation(
    ctx: RunContext, rows: dict[str, Any], queued: Queued | None, devices: DeviceSelection | None
) -> DeviceGate | None:
    """Wait for the validation job and gate each hardware group on its figures (device p50 per group
    when the device bench gave them)."""
    if queued is None:
        return None
    from liteship.pipeline.device_gate import gate_in_pipeline

    p50 = {g.group: g.device_p50_ms for g in devices.groups} if devices is not None else None
    if devices is not None and not devices.fallback:  # the selection's figures, as `fleet validate gate`
        rows = {**rows, "device_selection": devices.to_dict()}
    return ctx.timed(
        "device validation",
        lambda: gate_in_pipeline(
            rows, queued, timeout_s=ctx.cfg.bench.device_timeout_s, p50_by_group=p50, log=ctx.log
        ),
    )


def _device_profile(ctx: RunContext, recipes: list[str]) -> DeviceProfile | None:
    """With ``bench.profile`` and ``bench.devices``: the per-op profile of the shipped variant(s)."""
    if not (ctx.cfg.bench.profile and ctx.cfg.bench.devices and recipes):
        return None
    from liteship.pipeline.device_profile import profile_in_pipeline

    b = ctx.cfg.bench
    return ctx.timed(
        "device profile",
        lambda: profile_in_pipeline(
            {r: ctx.path_of(r) for r in recipes},
            list(b.devices),
            runs=min(b.runs, 20),
            timeout_s=b.device_timeout_s,
            log=ctx.log,
        ),
    )


def group_choices(devices: DeviceSelection | None, validation: DeviceGate | None) -> dict[str, str | None]:
    """The variant chosen for each hardware group: the device validation's choice (it already takes the
    group's device p50), else the device bench's per-group choice; empty without device figures."""
    out: dict[str, str | None] = {}
    if devices is not None and not devices.fallback:
        out.update({g.group: g.chosen for g in devices.groups})
    if validation is not None and not validation.fallback:
        out.update({g.group: g.chosen for g in validation.groups})
    return dict(sorted(out.items()))


def _device_selection(ctx: RunContext, rows: dict[str, Any], selection: Selection) -> DeviceSelection | None:
    """With ``bench.devices``: benchmark the variants on those devices and select on their figures, overall
    and per hardware group."""
    if not ctx.cfg.bench.devices:
        return None
    from liteship.pipeline.device_select import select_in_pipeline

    return ctx.timed(
        "device bench",
        lambda: select_in_pipeline(
            {**rows, "chosen": selection.chosen}, ctx.cfg.bench, ctx.log, per_group=True
        ),
    )


def build_report(
    ctx: RunContext,
    selection: Selection,
    chosen: str | None,
    accelerator: str | None,
    repair: AccuracyRepairReport | None,
    shipped: Shipped,
    devices: DeviceSelection | None,
    validation: DeviceGate | None = None,
    groups: dict[str, str | None] | None = None,
    profile: DeviceProfile | None = None,
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
        device_validation=validation,
        group_choices=dict(groups or {}),
        release_variants=shipped.variants,
        device_profile=profile,
    )
