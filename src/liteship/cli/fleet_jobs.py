"""``liteship fleet validate`` and ``liteship fleet profile``: device jobs other than bench (docs/device-jobs.md).

``fleet validate VARIANT… --data VAL.npz (--device ID…|--group G|--profile K=V…|--tag T…)`` runs the variants on
the devices over a signed, bounded subset of the data and shows the figures of ``liteship validate``
per device and per hardware group; ``fleet profile VARIANT… (--device…)`` times every op on the
devices. ``results JOB`` reads either again.
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from liteship.cli._common import console, emit_json, json_option
from liteship.cli._fleet import QueueGroup, bench_client, connection_options, device_selector, wait_for_job
from liteship.errors import GateFailed, UsageError


def _devices_options(f: Any) -> Any:
    f = click.option(
        "--tag",
        "job_tags",
        multiple=True,
        metavar="TAG",
        help="Only devices with this tag (repeatable: all).",
    )(f)
    f = click.option("--profile", "profile", multiple=True, metavar="KEY=VALUE", help="Profile filter.")(f)
    f = click.option("--group", metavar="G", help="A hardware group, e.g. aarch64+neon+dotprod.")(f)
    return click.option("--device", "devices", multiple=True, metavar="ID", help="A device id (repeatable).")(
        f
    )


def _num(v: float | None, fmt: str = "{:.4g}") -> str:
    return "–" if v is None else fmt.format(v)


# ---- validate -------------------------------------------------------------------------------------------


@click.group("validate", cls=QueueGroup)
@connection_options
def validate() -> None:
    """Validate .tflite variants on enrolled devices, with the figures of `liteship validate`.

    \b
    Examples:
      liteship fleet validate int8.tflite --data val.npz --reference float.tflite --group aarch64+neon --wait 600
      liteship fleet validate results job-0123456789abcdef --json
    The samples (a bounded subset) and the variants travel as TUF targets signed by the fleet; each
    device runs them between frames, on the runtime and accelerator of its live model, and sends the
    outputs back; the server compares them with the reference outputs computed here.
    """


@validate.command("queue")
@click.argument("variants", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--data", required=True, type=click.Path(exists=True), help="Validation data (.npz, .npy, images)."
)
@click.option(
    "--reference",
    type=click.Path(exists=True),
    help="The model the outputs should match (e.g. the float .tflite or .keras). Defaults to each "
    "variant itself on this workstation.",
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Use at most the first N samples.")
@_devices_options
@click.option("--min-agreement", type=click.FloatRange(0, 1), help="Gate: top-1 agreement on every device.")
@click.option("--max-accuracy-drop", type=click.FloatRange(0, 100), help="Gate: accuracy drop (points).")
@click.option("--min-sqnr", type=float, help="Gate: SQNR (dB) of every output.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), help="Gate: the variant's own accuracy.")
@click.option(
    "--atol", type=click.FloatRange(min=0), help="Gate: |device − reference| ≤ atol + rtol·|reference|."
)
@click.option("--rtol", type=click.FloatRange(min=0), help="See --atol.")
@click.option("--threads", type=click.IntRange(1, 64), help="LiteRT threads. Defaults to the agent's own.")
@click.option("--wait", "wait_s", type=click.FloatRange(0, 86_400), help="Wait up to this many seconds.")
@click.option("--targets-key", type=click.Path(exists=True, dir_okay=False), help="Offline TUF targets key.")
@connection_options
@json_option
@click.pass_context
def validate_queue(
    ctx: click.Context,
    variants: tuple[str, ...],
    data: str,
    reference: str | None,
    limit: int | None,
    devices: tuple[str, ...],
    group: str | None,
    profile: tuple[str, ...],
    job_tags: tuple[str, ...],
    min_agreement: float | None,
    max_accuracy_drop: float | None,
    min_sqnr: float | None,
    min_accuracy: float | None,
    atol: float | None,
    rtol: float | None,
    threads: int | None,
    wait_s: float | None,
    targets_key: str | None,
    as_json: bool,
) -> None:
    """Queue a validation job of VARIANTS on the devices chosen by --device, --group, --profile or --tag."""
    from liteship.fleet.jobs_client import prepare_validation

    selector = device_selector(devices, group, profile, job_tags)
    prepared = prepare_validation(list(variants), data, reference=reference, limit=limit)
    gates = {
        "min_agreement": min_agreement,
        "max_accuracy_drop": max_accuracy_drop,
        "min_sqnr": min_sqnr,
        "min_accuracy": min_accuracy,
        "atol": atol,
        "rtol": rtol,
    }
    client = bench_client(ctx)
    job = client.queue(
        list(variants), **selector, threads=threads, targets_key=targets_key,
        kind="validate", validation=prepared, gates=gates,
    )  # fmt: skip
    if not as_json:
        console.print(
            f"queued {job['id']}: {len(job['variants'])} variant(s) × {prepared.samples} samples on "
            f"{len(job['tasks'])} device(s); TUF targets: {job['tuf']}",
            markup=False,
        )
        for note in prepared.notes:
            console.print(f"  note: {note}", markup=False, soft_wrap=True)
    if wait_s:
        job = wait_for_job(client, job["id"], wait_s, show=not as_json)
    _show(job, as_json, queued=not wait_s)
    if wait_s:
        _gate(job)


def _gate(job: dict[str, Any]) -> None:
    """Exit 3 when a group failed the job's gates (only when the job has gates)."""
    if not job.get("settings", {}).get("gates"):
        return
    failed = [g for g in job.get("groups") or [] if not g["passed"]]
    if failed:
        raise GateFailed(
            f"{len(failed)} hardware group × variant pair(s) failed the device gates:",
            failures=[
                f"{g['group']} {g['variant']}: "
                + ("; ".join(g["failures"]) or f"no figures from {', '.join(g['missing'])}")
                for g in failed
            ],
        )


def _show(job: dict[str, Any], as_json: bool, queued: bool = False) -> None:
    if as_json:
        emit_json(job)
    elif queued:
        console.print(f"results: liteship fleet {job.get('kind', 'bench')} results {job['id']}", markup=False)
    elif job.get("kind") == "profile":
        render_profile(job)
    else:
        render_validation(job)


def render_validation(job: dict[str, Any]) -> None:
    """A row per device × variant × output, then a row per hardware group × variant (worst device),
    then one line per device and variant (where it ran, and why it failed)."""
    table = Table(title=f"{job['id']} ({job['state']}): device outputs vs reference", title_justify="left")
    table.add_column("device", no_wrap=True)
    for col in ("variant", "output", "top-1", "top-5", "max abs", "mean abs", "SQNR dB", "gates"):
        table.add_column(col, justify="left" if col in ("variant", "output") else "right")
    lines = []
    for t in job["tasks"]:
        for r in t.get("results") or []:
            fig = r.get("validation")
            if not r.get("ok") or not fig:
                lines.append(f"{t['device_id']} {r.get('name')}: {r.get('error') or 'no figures'}")
                continue
            agreement = {a["output"]: a for a in fig["agreement"]}
            for o in fig["outputs"]:
                a = agreement.get(o["name"], {})
                table.add_row(
                    escape(t["device_id"]), escape(r["name"]), escape(o["name"][:40]),
                    _num(a.get("top1"), "{:.2%}"), _num(a.get("top5"), "{:.2%}"),
                    _num(o["max_abs_error"]), _num(o["mean_abs_error"]),
                    "∞ (identical)" if o.get("identical") else _num(o.get("sqnr_db"), "{:.1f}"),
                    "pass" if fig["passed"] else "FAIL",
                )  # fmt: skip
            verdict = "pass" if fig["passed"] else "FAIL: " + "; ".join(fig["failures"])
            on = fig.get("accelerator") or "cpu"
            if fig.get("fallback"):
                on += f" (fell back: {fig['fallback']})"
            lines.append(f"{t['device_id']} {r['name']}: on {on}; {verdict}")
        if not t.get("results"):
            lines.append(f"{t['device_id']}: {t['state']}: {t.get('error') or 'no figures yet'}")
    console.print(table)
    groups = Table(title="per hardware group (worst device)", title_justify="left")
    for col in ("group", "variant", "devices", "top-1 min", "top-5 min", "max abs", "SQNR dB min", "gates"):
        groups.add_column(col, justify="left" if col in ("group", "variant") else "right")
    for g in job.get("groups") or []:
        groups.add_row(
            escape(g["group"]), escape(g["variant"]), f"{g['answered']}/{len(g['devices'])}",
            _num(g["top1_min"], "{:.2%}"), _num(g["top5_min"], "{:.2%}"), _num(g["max_abs_error"]),
            "∞ (identical)" if g["identical"] else _num(g["sqnr_db_min"], "{:.1f}"),
            "pass" if g["passed"] else "FAIL",
        )  # fmt: skip
    console.print(groups)
    for line in lines:
        console.print(f"  {line}", markup=False, soft_wrap=True)


@validate.command("results")
@click.argument("job_id")
@click.option(
    "--wait", "wait_s", type=click.FloatRange(0, 86_400), help="Wait up to this many seconds first."
)
@connection_options
@json_option
@click.pass_context
def validate_results(ctx: click.Context, job_id: str, wait_s: float | None, as_json: bool) -> None:
    """Show a validation job's figures per device and per hardware group (exit 3 when a gate failed)."""
    client = bench_client(ctx)
    job = wait_for_job(client, job_id, wait_s, show=not as_json) if wait_s else client.job(job_id)
    _show(job, as_json)
    _gate(job)


@validate.command("gate")
@click.argument("report_path", metavar="REPORT", type=click.Path(exists=True, dir_okay=False))
@click.option("--job", "job_id", help="A finished validation job of the report's variants.")
@click.option(
    "--data",
    type=click.Path(exists=True),
    help="Queue one now on this data (with --device/--group/--profile/--tag).",
)
@_devices_options
@click.option("--wait", "wait_s", default=600.0, show_default=True, type=click.FloatRange(0, 86_400))
@connection_options
@json_option
@click.pass_context
def validate_gate(
    ctx: click.Context,
    report_path: str,
    job_id: str | None,
    data: str | None,
    devices: tuple[str, ...],
    group: str | None,
    profile: tuple[str, ...],
    job_tags: tuple[str, ...],
    wait_s: float,
    as_json: bool,
) -> None:
    """Gate a pipeline REPORT's variants on the devices' validation figures, per hardware group.

    A variant that passes the pipeline's gates on the workstation but fails them on a group is not
    chosen for that group. Writes `device_validation` into REPORT; exit 3 when a group has no variant.
    """
    import json
    from pathlib import Path

    from liteship.pipeline.device_gate import apply, device_gate, queue_for_report
    from liteship.pipeline.device_select import read_report

    report = read_report(report_path)
    client = bench_client(ctx)
    if (job_id is None) == (data is None):
        raise UsageError("give either --job (a finished validation job) or --data (queue one now).")
    if data is not None:
        job_id = queue_for_report(
            client, report, report_path, data, **device_selector(devices, group, profile, job_tags)
        )["id"]
    assert job_id is not None
    job = wait_for_job(client, job_id, wait_s, show=not as_json)
    gate = device_gate(report, job)
    Path(report_path).write_text(json.dumps(apply(report, gate), indent=2))
    if as_json:
        emit_json(gate.to_dict())
    else:
        table = Table(
            title=f"device validation ({gate.job_id}): workstation | device, per hardware group",
            title_justify="left",
        )
        for col in ("group", "variant", "workstation", "devices", "chosen"):
            table.add_column(col)
        for g in gate.groups:
            for recipe, ws in g.workstation.items():
                dev = g.device.get(recipe)
                table.add_row(
                    escape(g.group), escape(recipe), "pass" if ws else "FAIL",
                    "–" if dev is None else ("pass" if dev else "FAIL"), "✓" if recipe == g.chosen else "",
                )  # fmt: skip
        console.print(table)
        for g in gate.groups:
            for recipe, why in g.excluded.items():
                console.print(f"  {g.group} {recipe}: {'; '.join(why)}", markup=False, soft_wrap=True)
    if gate.failed_groups:
        raise GateFailed(f"no variant passes the gates on {', '.join(gate.failed_groups)}.")


# ---- profile --------------------------------------------------------------------------------------------


@click.group("profile", cls=QueueGroup)
@connection_options
def profile_cmd() -> None:
    """Per-op timing of .tflite variants on enrolled devices: each op's time and where it ran.

    \b
    Examples:
      liteship fleet profile int8.tflite --device pi-1 --wait 600
      liteship fleet profile results job-0123456789abcdef --json
    """


@profile_cmd.command("queue")
@click.argument("variants", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@_devices_options
@click.option("--runs", default=20, show_default=True, type=click.IntRange(1, 200), help="Runs per op.")
@click.option("--threads", type=click.IntRange(1, 64), help="LiteRT threads. Defaults to the agent's own.")
@click.option("--wait", "wait_s", type=click.FloatRange(0, 86_400), help="Wait up to this many seconds.")
@click.option("--targets-key", type=click.Path(exists=True, dir_okay=False), help="Offline TUF targets key.")
@connection_options
@json_option
@click.pass_context
def profile_queue(
    ctx: click.Context,
    variants: tuple[str, ...],
    devices: tuple[str, ...],
    group: str | None,
    profile: tuple[str, ...],
    job_tags: tuple[str, ...],
    runs: int,
    threads: int | None,
    wait_s: float | None,
    targets_key: str | None,
    as_json: bool,
) -> None:
    """Queue a profile job of VARIANTS on the devices chosen by --device, --group, --profile or --tag."""
    selector = device_selector(devices, group, profile, job_tags)
    client = bench_client(ctx)
    job = client.queue(
        list(variants), **selector, runs=runs, threads=threads, targets_key=targets_key, kind="profile"
    )
    if not as_json:
        console.print(
            f"queued {job['id']} on {len(job['tasks'])} device(s); TUF targets: {job['tuf']}", markup=False
        )
    if wait_s:
        job = wait_for_job(client, job["id"], wait_s, show=not as_json)
    _show(job, as_json, queued=not wait_s)


def render_profile(job: dict[str, Any], top: int = 15) -> None:
    """Per device × variant: load, first inference, invoke, peak RSS; then its slowest ops."""
    for t in job["tasks"]:
        for r in t.get("results") or []:
            if not r.get("ok"):
                console.print(f"{t['device_id']} {r.get('name')}: {r.get('error')}", markup=False)
                continue
            console.print(
                f"{t['device_id']} {r['name']}: load {_num(r.get('load_ms'))} ms, first inference "
                f"{_num(r.get('first_inference_ms'))} ms, invoke {_num(r.get('invoke_ms'))} ms (ops total "
                f"{_num(r.get('ops_total_ms'))} ms), peak RSS {_num((r.get('peak_rss_bytes') or 0) / 2**20, '{:.1f}')} MiB",
                markup=False,
            )
            table = Table("op", "#", "ran on", "ms", "share")
            total = r.get("ops_total_ms") or 0.0
            for op in sorted(r.get("ops") or [], key=lambda o: -o["ms"])[:top]:
                share = op["ms"] / total if total else 0.0
                table.add_row(
                    escape(op["op"]),
                    str(op["index"]),
                    escape(op["ran_on"]),
                    f"{op['ms']:.4f}",
                    f"{share:.1%}",
                )
            console.print(table)
        if not t.get("results"):
            console.print(
                f"{t['device_id']}: {t['state']}: {t.get('error') or 'no figures yet'}", markup=False
            )


@profile_cmd.command("results")
@click.argument("job_id")
@click.option(
    "--wait", "wait_s", type=click.FloatRange(0, 86_400), help="Wait up to this many seconds first."
)
@connection_options
@json_option
@click.pass_context
def profile_results(ctx: click.Context, job_id: str, wait_s: float | None, as_json: bool) -> None:
    """Show a profile job's per-op table per device and variant."""
    client = bench_client(ctx)
    job = wait_for_job(client, job_id, wait_s, show=not as_json) if wait_s else client.job(job_id)
    _show(job, as_json)
