"""``liteship pipeline run liteship.yaml``: the main job, from a trained model to a signed package."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.table import Table

from liteship.cli._common import console, emit_json, json_option, quiet_tensorflow
from liteship.errors import GateFailed, LiteshipError, UsageError
from liteship.progress import track_until


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
    """Run the pipeline described by CONFIG (a liteship.yaml).

    Converts the source with every recipe in `recipes`, validates each variant against the source on
    `validation.data`, benchmarks it, applies `gates`, picks the variant to ship (`objective`), writes its
    TFLite metadata and a signed package. Everything goes to `output` (relative to CONFIG's folder):
    report.json, report.html, variants/, the chosen MODEL_ID.tflite and MODEL_ID-VERSION.lsp. With
    `bench.devices` the variants are also benchmarked and validated on those fleet devices, each hardware
    group gets the variant that passes on its devices, and groups that chose differently get a release of
    variants (MODEL_ID-VERSION.VARIANT.lsp, the workstation's choice the default). Keys and their
    defaults: docs/pipeline.md. Exit 2 for an invalid config, 3 when no variant passes the gates, or none
    passes them on a hardware group's devices (the reports are still written).

    \b
    Example:
      liteship pipeline run examples/digits/liteship.yaml
    """
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


@cli.command("select")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--job", "job_id", metavar="JOB", help="A fleet bench job of the report's variants.")
@click.option("--device", "devices", multiple=True, metavar="ID", help="Queue the variants on this device.")
@click.option("--group", metavar="G", help="Queue the variants on a hardware group.")
@click.option("--profile", multiple=True, metavar="KEY=VALUE", help="Queue on devices matching the profile.")
@click.option(
    "--timeout",
    "timeout_s",
    default=600.0,
    show_default=True,
    type=click.FloatRange(0, 86_400),
    help="Seconds to wait for the devices; then select on what arrived (or the workstation's).",
)
@click.option("--per-group", is_flag=True, help="Also choose one variant per hardware group.")
@click.option("--server", metavar="URL", help="Fleet server URL. Defaults to $LITESHIP_SERVER.")
@click.option("--token", metavar="TOKEN", help="Admin token. Defaults to $LITESHIP_TOKEN.")
@json_option
def select_cmd(
    report: str,
    job_id: str | None,
    devices: tuple[str, ...],
    group: str | None,
    profile: tuple[str, ...],
    timeout_s: float,
    per_group: bool,
    server: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Select on device latency: the median p50 the fleet's devices measured for each variant.

    \b
    REPORT is report.json of `liteship pipeline run`. Give --job (from `liteship fleet bench`), or
    --device/--group/--profile to queue the report's variants now. Waits up to --timeout; devices that
    never answer are named, and with no answer at all selection falls back to the workstation figures
    (flagged). Writes the result into report.json (device_selection) and report.html.
    Exit code 3 when no variant passes the gates on device figures.
    """
    from liteship.fleet.jobs_client import BenchClient, parse_profile
    from liteship.pipeline.device_select import read_report, select_report

    read_report(report)  # a clear error before any network call
    if job_id is None and not (devices or group or profile):
        raise UsageError(
            "give a bench job id (--job), or devices to queue the report's variants on "
            "(--device, --group or --profile)."
        )
    client = BenchClient(server, token)
    with track_until("devices answered", enabled=not as_json) as update:
        sel = select_report(
            report,
            client=client,
            job_id=job_id,
            devices=list(devices) or None,
            group=group,
            profile=parse_profile(profile) if profile else None,
            timeout_s=timeout_s,
            per_group=per_group,
            on_progress=update,
        )
    if as_json:
        emit_json(sel)
    else:
        render_device_selection(sel)
    if sel.chosen is None:
        raise GateFailed(f"no variant passes the gates on device figures ({sel.message})")


@cli.command("compare")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--release", type=click.Path(dir_okay=False), help="The current release's .tflite (first row).")
@click.option(
    "--data",
    "datasets",
    multiple=True,
    required=True,
    metavar="NAME=PATH",
    help="A data set (.npz with x [and y], .npy, image folder); repeatable: e.g. field=field.npz val=val.npz.",
)
@json_option
def compare_cmd(report: str, release: str | None, datasets: tuple[str, ...], as_json: bool) -> None:
    """The current release and every variant of a run, side by side on each data set.

    \b
    Example (field data from `liteship fleet samples export … --labeled-only`):
      liteship pipeline compare out/report.json --release current.tflite \\
          --data field=field.npz --data original=val.npz
    Accuracy where the data set has labels, top-1 agreement with the run's reference model always.
    """
    from liteship.pipeline.compare import compare, parse_dataset

    named = dict(parse_dataset(d) for d in datasets)
    result = compare(report, release=release, datasets=named, progress=not as_json)
    if as_json:
        emit_json(result)
        return
    table = Table("model", *[f"{n} accuracy" for n in named], *[f"{n} agreement" for n in named])
    for model, row in result.cells.items():
        acc = [_p(row[n].accuracy) for n in named]
        agr = [_p(row[n].agreement) for n in named]
        table.add_row(model, *acc, *agr)
    console.print(table)
    for n in named:
        ref = next(iter(result.cells.values()))[n].reference_accuracy
        best = result.best_on(n)
        console.print(
            f"{n}: best {best}" + (f"; the float reference: {_p(ref)}" if ref is not None else ""),
            soft_wrap=True,
        )


def render_device_selection(sel) -> None:
    """Workstation and device p50 side by side, the choice, and what is missing."""
    devices = sorted({d for v in sel.variants for d in (*v.devices, *v.errors)})
    t = Table(title=f"job {sel.job_id}: p50 latency in ms ({sel.basis})", title_justify="left")
    for col in ("variant", "workstation", "device median", *devices):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for v in sel.variants:
        cells = [
            _f(v.devices.get(d)) if d in v.devices else ("error" if d in v.errors else "–") for d in devices
        ]
        mark = " ★" if v.recipe == sel.chosen else ""
        t.add_row(v.recipe + mark, _f(v.workstation_p50_ms), _f(v.device_p50_ms), *cells)
    console.print(t)
    for g in sel.groups:
        console.print(
            f"group {g.group} ({', '.join(g.devices)}): {g.chosen or 'nothing passes'}", markup=False
        )
    style = "bold yellow" if sel.fallback else "bold green"
    console.print(f"[{style}]{'fallback' if sel.fallback else 'selected'}[/] {sel.message}", soft_wrap=True)


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
    picked = (report.chosen, report.chosen_accelerator)
    for v in [*report.variants, *report.accelerator_pairs]:  # every (variant, accelerator) pair
        chosen = (v.recipe, v.accelerator) == picked
        mark = (" ★" if chosen else "") + (" †" if v.pruned else "")
        gates = "[green]pass[/]" if v.gates_passed else "[red]fail[/] " + "; ".join(v.failures)
        if v.gates_passed is None and not v.failures:
            gates = "[dim]not a candidate[/]"
        t.add_row(
            v.label + mark,
            _f((v.size_bytes or 0) / 1024, 1) if v.size_bytes else "–",
            _f(v.ratio_to_float32, 2),
            _f(v.p50_ms),
            _f(v.p95_ms),
            _f(v.p99_ms),
            _p(v.accuracy),
            _f(v.accuracy_drop, 2),
            _p(v.agreement_top1),
            gates,
            style="bold" if chosen else None,
        )
    console.print(t)
    if report.preprocessing:
        console.print(f"preprocessing: {report.preprocessing.get('text')}", markup=False)
    if report.source_normalization:
        from liteship.convert.report import normalization_summary

        console.print(
            f"source normalized: {normalization_summary(report.source_normalization)}", markup=False
        )
    for v in report.variants:
        if v.pruned:
            console.print(f"† {v.recipe}: {v.pruned}")
    mp = report.mixed_precision
    ceiling = mp.input_ceiling if mp else None
    if ceiling is not None and not ceiling.passed:
        figures = f"agreement {100 * ceiling.agreement:.1f}%" if ceiling.agreement is not None else ""
        console.print(
            f"accuracy repair: the float model on the {ceiling.input_type} input grid fails the gates ({figures})"
            + (f"; the repair used {mp.io_type} model I/O" if mp and mp.io_type else "")
        )
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
        on = f" on {report.chosen_accelerator}" if report.chosen_accelerator else ""
        console.print(f"[bold green]selected[/] {report.chosen}{on} → {report.chosen_model}")
    if report.package:
        console.print(f"[bold]package[/]  {report.package['path']}")
    dv = report.device_validation
    if dv is not None:
        console.print(f"device validation: {dv.message}", markup=False, soft_wrap=True)
    for rv in report.release_variants:
        where = " or ".join(rv.groups) or "devices no condition selects"
        pkg = f" → {rv.package['path']}" if rv.package else ""
        console.print(
            f"release variant {rv.name}{' (default)' if rv.default else ''}: {rv.recipe} for {where}{pkg}",
            markup=False,
            soft_wrap=True,
        )
    console.print(
        f"[bold]report[/]   {report.report_html}  (and report.json) — {report.total_seconds:.1f} s total"
    )


def run_example(config: Path, *, model: Path, prepare: Callable[[], object], key: Path) -> int:
    """Drive an example end to end: prepare its data if ``model`` is missing, create a signing key if
    ``key`` is missing, run the pipeline in ``config`` and print the summary. Returns the exit code."""
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
