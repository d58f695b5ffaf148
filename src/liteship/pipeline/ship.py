"""The last stages: write the chosen variant's metadata, package and sign it, and write the reports
(``report.json`` and ``report.html``, each rendered once from the :class:`PipelineReport`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship.errors import LiteshipError
from liteship.pipeline.context import RunContext
from liteship.pipeline.report import PipelineReport
from liteship.pipeline.variant import with_pair


@dataclass(frozen=True)
class Shipped:
    """What shipping the chosen variant produced.

    Attributes:
        model: The chosen variant with its metadata (``<model_id>.tflite``).
        metadata: That metadata as read back.
        package: The signed package's record, ``None`` without ``package.key``.
        error: Why shipping failed (the reports are still written, then the run fails with it).
    """

    model: Path | None = None
    metadata: dict[str, Any] | None = None
    package: dict[str, Any] | None = None
    error: LiteshipError | None = None


def ship(ctx: RunContext, chosen: str, accelerator: str | None) -> Shipped:
    """Metadata, then the package, for variant ``chosen`` as measured on ``accelerator`` (``None``: the
    Interpreter). A failure is returned (and warned about), not raised, so the reports still get written."""
    model = metadata = None
    try:
        model, metadata = ctx.timed("metadata", lambda: write_metadata(ctx, chosen))
        package = ctx.timed("package", lambda: build_package(ctx, chosen, accelerator, model))
    except LiteshipError as e:
        ctx.warn(f"shipping {chosen} failed: {e}")
        return Shipped(model, metadata, None, e)
    return Shipped(model, metadata, package)


def write_metadata(ctx: RunContext, chosen: str) -> tuple[Path, dict[str, Any]]:
    from liteship.model.metadata import read_metadata
    from liteship.model.metadata import write_metadata as write

    m, cfg = ctx.cfg.metadata, ctx.cfg
    dst = ctx.out / f"{cfg.model_id}.tflite"
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
    ctx: RunContext, chosen: str, accelerator: str | None, model_path: Path
) -> dict[str, Any] | None:
    import numpy as np

    from liteship.data import load_dataset
    from liteship.package import build_package as build

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
    )
    ctx.log(f"[bold]package[/] {info.path} (signed, {info.size / 1024:.1f} KiB)")
    return info.to_dict()


def write_reports(report: PipelineReport) -> None:
    """``report.json`` and ``report.html`` (with the device selection's section when there is one)."""
    import json

    from liteship._fs import write_atomic
    from liteship.report.pipeline_html import render_pipeline_html

    assert report.report_json is not None and report.report_html is not None
    write_atomic(Path(report.report_json), json.dumps(report.to_dict(), indent=2).encode())
    write_atomic(Path(report.report_html), render_pipeline_html(report).encode())


__all__ = ["Shipped", "ship", "write_reports"]
