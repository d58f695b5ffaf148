"""``liteship pipeline run liteship.yaml``: the main job, from a trained model to a signed package."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.table import Table

from liteship.cli._common import console, emit_json, json_option


@click.group(name="pipeline")
def cli() -> None:
    """Convert with every recipe, validate, benchmark, select, write metadata, package and sign.

    \b
    Example:
      liteship pipeline run examples/digits/liteship.yaml
    Exit code 3 when no variant passes the gates (the reports are still written).
    """


@cli.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No per-stage progress lines.")
def run_cmd(config: str, as_json: bool, quiet: bool) -> None:
    """Run the pipeline described by CONFIG (a liteship.yaml)."""
    from liteship.errors import GateFailed
    from liteship.pipeline import run_pipeline

    log = (lambda msg: None) if (quiet or as_json) else None
    try:
        report = run_pipeline(config, log=log, progress=not as_json)
    except GateFailed as e:
        if e.report is not None:
            if as_json:
                emit_json(e.report)
            else:
                render_summary(e.report)
        raise
    if as_json:
        emit_json(report)
    else:
        render_summary(report)


def _f(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _p(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def render_summary(report) -> None:
    """The variants table: sizes, latency (ms), accuracy, agreement and gate verdicts."""
    t = Table(
        title=f"{report.model_id} {report.version}: latency in ms at {report.selection_threads} thread(s); "
        "accuracy drop in points",
        title_justify="left",
    )
    for col in ("variant", "KiB", "×f32", "p50", "p95", "p99", "accuracy", "drop", "agreement", "gates"):
        t.add_column(col, justify="left" if col in ("variant", "gates") else "right", no_wrap=col != "gates")
    for v in report.variants:
        mark = (" ★" if v.recipe == report.chosen else "") + (" †" if v.pruned else "")
        gates = "[green]pass[/]" if v.gates_passed else "[red]fail[/] " + "; ".join(v.failures)
        t.add_row(
            v.recipe + mark,
            _f((v.size_bytes or 0) / 1024, 1) if v.size_bytes else "–",
            _f(v.ratio_to_float32, 2),
            _f(v.p50_ms),
            _f(v.p95_ms),
            _f(v.p99_ms),
            _p(v.accuracy),
            _f(v.accuracy_drop, 2),
            _p(v.agreement_top1),
            gates,
            style="bold" if v.recipe == report.chosen else None,
        )
    console.print(t)
    for v in report.variants:
        if v.pruned:
            console.print(f"† {v.recipe}: {v.pruned}")
    mp = report.mixed_precision
    if mp and mp.recipe:
        cost = mp.cost
        price = (
            f"; p50 ×{cost.latency_vs_int8:.2f} and size ×{cost.size_vs_int8:.2f} of full {mp.base}"
            if cost and cost.latency_vs_int8 and cost.size_vs_int8
            else ""
        )
        console.print(
            f"accuracy repair: {mp.recipe} keeps {len(mp.float_layers)} op(s) in float"
            + (f" ({', '.join(n.split(';')[0] for n in mp.float_layers)})" if mp.float_layers else "")
            + price
        )
    elif mp and mp.search and mp.search.get("label"):
        console.print(f"accuracy repair: {mp.search['label']}")
    if report.chosen:
        console.print(f"[bold green]selected[/] {report.chosen} → {report.chosen_model}")
    if report.package:
        console.print(f"[bold]package[/]  {report.package['path']}")
    console.print(
        f"[bold]report[/]   {report.report_html}  (and report.json) — {report.total_seconds:.1f} s total"
    )


def run_example(config: Path, *, model: Path, prepare: Callable[[], object], key: Path) -> int:
    """Drive an example end to end: prepare its data if ``model`` is missing, create a signing key if
    ``key`` is missing, run the pipeline in ``config`` and print the summary. Returns the exit code."""
    from liteship.cli._common import quiet_tensorflow
    from liteship.errors import GateFailed, LiteshipError
    from liteship.package import generate_keypair
    from liteship.pipeline import run_pipeline

    quiet_tensorflow()
    if not model.exists():
        prepare()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        generate_keypair(key)
        print(f"created a signing key pair: {key} (+ .pub)")
    try:
        report = run_pipeline(config)
    except GateFailed as e:
        if e.report is not None:
            render_summary(e.report)
        print(f"error: {e}", file=sys.stderr)
        return 3
    except LiteshipError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    render_summary(report)
    return 0
