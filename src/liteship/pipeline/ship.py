"""The last stages: write the chosen variant's metadata, package and sign it, and write the reports
(``report.json`` and ``report.html``, each rendered once from the :class:`PipelineReport`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from liteship._fs import write_atomic
from liteship.data import load_dataset
from liteship.errors import LiteshipError
from liteship.model.metadata import read_metadata
from liteship.pipeline.context import RunContext
from liteship.pipeline.report import PipelineReport, ReleaseVariant
from liteship.pipeline.variant import with_pair
from liteship.report.pipeline_html import render_pipeline_html


@dataclass(frozen=True)
class Shipped:
    """What shipping the chosen variant produced.

    Attributes:
        model: The chosen variant with its metadata (``<model_id>.tflite``).
        metadata: That metadata as read back.
        package: The signed package's record, ``None`` without ``package.key`` (the default variant's
            with release variants).
        error: Why shipping failed (the reports are still written, then the run fails with it).
        variants: The release's variants, when the hardware groups chose different variants.
    """

    model: Path | None = None
    metadata: dict[str, Any] | None = None
    package: dict[str, Any] | None = None
    error: LiteshipError | None = None
    variants: list[ReleaseVariant] = field(default_factory=list)


def variant_name(recipe: str) -> str:
    """A release variant's name for a pipeline variant: ``none`` → ``float32``, ``int8+mixed`` →
    ``int8-mixed`` (``liteship.package.variants.NAME``)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", ("float32" if recipe == "none" else recipe).lower()).strip("-._")
    return (name or "variant")[:48]


def plan_release_variants(default: str | None, groups: dict[str, str | None]) -> list[ReleaseVariant]:
    """The release variants of a per-group choice (``group → recipe``), or ``[]`` when the groups did not
    choose different variants (one package, as before).

    One variant per chosen recipe, selected by the conditions of the groups that chose it
    (``condition_of_group``); ``default`` (the workstation's choice) is the default variant, and also
    carries the conditions of the groups that chose it, so a device of a more specific group is not
    taken by a broader group's condition (``x86_64+avx2+avx512f`` matches ``x86_64+avx2`` too: the
    most specific condition wins). A group with no choice gets no condition.
    """
    from liteship.package.variants import condition_of_group

    chosen = {g: r for g, r in groups.items() if r is not None}
    if default is None or len(set(chosen.values())) < 2:
        return []
    recipes = [default, *sorted(set(chosen.values()) - {default})]
    names: dict[str, str] = {}
    for r in recipes:  # distinct names even when two recipes sanitize alike
        name, i = variant_name(r), 2
        while name in names.values():
            name, i = f"{variant_name(r)[:45]}-{i}", i + 1
        names[r] = name
    return [
        ReleaseVariant(
            name=names[r],
            recipe=r,
            default=r == default,
            groups=sorted(g for g, c in chosen.items() if c == r),
            when=[condition_of_group(g).to_dict() for g, c in sorted(chosen.items()) if c == r],
        )
        for r in recipes
    ]


def ship(
    ctx: RunContext, chosen: str, accelerator: str | None, plan: list[ReleaseVariant] | None = None
) -> Shipped:
    """Metadata, then the package, for variant ``chosen`` as measured on ``accelerator`` (``None``: the
    Interpreter); with a ``plan`` (:func:`plan_release_variants`), one package per release variant, the
    default being ``chosen``. A failure is returned (and warned about), not raised, so the reports still
    get written."""
    model: Path | None = None
    metadata: dict[str, Any] | None = None
    package: dict[str, Any] | None = None
    done: list[ReleaseVariant] = []
    _drop_stale_packages(ctx, bool(plan))

    def one(
        recipe: str, dst: Path | None, variant: ReleaseVariant | None
    ) -> tuple[Path, dict[str, Any], Any]:
        path, meta = ctx.timed("metadata", lambda: write_metadata(ctx, recipe, dst))
        on = accelerator if recipe == chosen else None
        return path, meta, ctx.timed("package", lambda: build_package(ctx, recipe, on, path, variant))

    try:
        if not plan:
            model, metadata, package = one(chosen, None, None)
            return Shipped(model, metadata, package)
        for rv in plan:
            name = f"{ctx.cfg.model_id}.tflite" if rv.default else f"{ctx.cfg.model_id}.{rv.name}.tflite"
            path, meta, pkg = one(rv.recipe, ctx.out / name, rv)
            done.append(replace(rv, model=str(path), package=pkg))
            if rv.default:
                model, metadata, package = path, meta, pkg
        ctx.log(
            f"[bold]release variants[/] {', '.join(f'{v.name} ({v.recipe})' for v in done)}; publish them "
            f"together: liteship fleet publish {ctx.out}/{ctx.cfg.model_id}-{ctx.cfg.version}.*.lsp"
        )
    except LiteshipError as e:
        ctx.warn(f"shipping {chosen} failed: {e}")
        return Shipped(model, metadata, None, e, [*done, *plan[len(done) :]] if plan else [])
    return Shipped(model, metadata, package, None, done)


def _drop_stale_packages(ctx: RunContext, variants: bool) -> None:
    """Delete this version's packages of an earlier run in the output folder that this run does not
    rewrite (a single package beside variants, or variants beside a single package), so
    ``liteship fleet publish out/*.lsp`` publishes this run's release only."""
    stem = f"{ctx.cfg.model_id}-{ctx.cfg.version}"
    stale = ctx.out.glob(f"{stem}.*.lsp") if not variants else [ctx.out / f"{stem}.lsp"]
    for p in stale:
        if p.is_file():
            p.unlink()
            ctx.log(f"[yellow]package[/] removed {p.name} of an earlier run")


def write_metadata(ctx: RunContext, chosen: str, dst: Path | None = None) -> tuple[Path, dict[str, Any]]:
    from liteship.model.metadata import write_metadata as write

    m, cfg = ctx.cfg.metadata, ctx.cfg
    dst = dst or ctx.out / f"{cfg.model_id}.tflite"
    write(
        ctx.path_of(chosen),
        dst,
        name=m.name or cfg.model_id,
        version=cfg.version,
        description=m.description,
        author=m.author,
        license=m.license,
        labels=cfg.path(m.labels),
        input_mean=list(ctx.pre.mean),
        input_std=list(ctx.pre.std),
    )
    ctx.log(f"[bold]metadata[/] written into {dst}")
    return dst, read_metadata(dst)


def build_package(
    ctx: RunContext,
    chosen: str,
    accelerator: str | None,
    model_path: Path,
    variant: ReleaseVariant | None = None,
) -> dict[str, Any] | None:
    """The signed package of ``chosen`` (``model_path``: it with its metadata); with ``variant``, as that
    variant of a multi-variant release (``<model_id>-<version>.<name>.lsp``)."""
    import numpy as np

    from liteship.package import build_package as build
    from liteship.package.variants import Variant

    cfg, pk = ctx.cfg, ctx.cfg.package
    if not pk.key:
        ctx.warn("package.key is not set: the model was not packaged or signed.")
        ctx.log("[yellow]package[/] skipped: package.key is not set")
        return None
    v = ctx.variants[chosen]
    pair = next((p for p in v.pairs if p.accelerator == accelerator), None)
    if pair is not None:  # the pair's figures: what the device will see on that accelerator
        v = with_pair(v, pair)
    conv, val = v.conversion, v.validation
    assert conv is not None and val is not None
    ds = load_dataset(
        cfg.path(cfg.validation.data),
        preprocessing=ctx.pre,
        input_shape=conv.inputs[0].shape if conv.inputs else None,
        limit=pk.golden_samples,
    )
    golden = np.stack([x for x, _ in ds]).astype(np.float32)
    e = v.entry(ctx.selection_threads)  # the thread count selection used, as in the summary table
    budget = max(100.0, (e.latency.p99_ms if e else 10.0) * pk.latency_budget_factor)
    nums = val.summary()
    metrics = {
        "recipe": chosen,
        **({"accelerator": accelerator} if accelerator else {}),
        "size_bytes": conv.size_bytes,
        **{k: v for k, v in nums.items() if k != "confidence_histogram"},
    }
    if e:
        metrics.update(
            p50_ms=e.latency.p50_ms, p95_ms=e.latency.p95_ms, p99_ms=e.latency.p99_ms, bench_threads=e.threads
        )
    rng = next(iter(conv.calibration_range.values()), None) if conv.calibration_range else None
    info = build(
        model_path,
        ctx.out,
        model_id=cfg.model_id,
        version=cfg.version,
        private_key=cfg.path(pk.key),
        recipe=chosen,
        metrics=metrics,
        reference_histogram=nums.get("confidence_histogram"),
        golden_inputs=golden,
        latency_budget_ms=budget,
        calibration_range=rng,
        labels=cfg.path(cfg.metadata.labels),
        description=cfg.metadata.description,
        variant=None
        if variant is None
        else Variant.from_dict({"name": variant.name, "default": variant.default, "when": variant.when}),
    )
    ctx.log(f"[bold]package[/] {info.path} (signed, {info.size / 1024:.1f} KiB)")
    return info.to_dict()


def write_reports(report: PipelineReport) -> None:
    """``report.json`` and ``report.html`` (with the device selection's section when there is one)."""
    import json

    assert report.report_json is not None and report.report_html is not None
    write_atomic(Path(report.report_json), json.dumps(report.to_dict(), indent=2).encode())
    write_atomic(Path(report.report_html), render_pipeline_html(report).encode())


__all__ = ["Shipped", "plan_release_variants", "ship", "variant_name", "write_reports"]
