"""``liteship fleet bench VARIANT.tflite… (--device ID… | --group G | --profile KEY=VALUE… | --tag TAG…)`` and
``liteship fleet bench results JOB`` / ``list``: benchmark variants on the fleet's own devices."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from liteship.cli._common import ExistingPath, console, emit_json, json_option
from liteship.cli._fleet import QueueGroup, bench_client, connection_options, device_selector, wait_for_job


@click.group("bench", cls=QueueGroup)
@connection_options
def bench() -> None:
    """Benchmark .tflite variants on enrolled devices, with the figures of `liteship bench`.

    \b
    Examples:
      liteship fleet bench float32.tflite int8.tflite --device pi-1 --device pi-2
      liteship fleet bench *.tflite --profile machine=aarch64 --profile isa=dotprod
      liteship fleet bench int8.tflite --tag site=berlin --tag ring=canary
      liteship fleet bench results job-0123456789abcdef --json
    Devices verify each variant as a TUF target signed by the fleet, run it between frames of
    their live model, and delete it afterwards; the live model is never replaced.
    """


@bench.command("queue")
@click.argument("variants", nargs=-1, required=True, type=ExistingPath(dir_okay=False))
@click.option("--device", "devices", multiple=True, metavar="ID", help="A device id (repeatable).")
@click.option("--group", metavar="G", help="A hardware group, e.g. x86_64+avx2 or aarch64+neon+dotprod.")
@click.option("--profile", "profile", multiple=True, metavar="KEY=VALUE", help="Profile filter (repeatable).")
@click.option(
    "--tag", "job_tags", multiple=True, metavar="TAG", help="Only devices with this tag (repeatable: all)."
)
@click.option("--runs", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Measured runs.")
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(0, 1000), help="Warm-up runs.")
@click.option("--min-seconds", default=1.0, show_default=True, type=click.FloatRange(0, 60))
@click.option("--threads", type=click.IntRange(1, 64), help="LiteRT threads. Defaults to the agent's own.")
@click.option(
    "--wait", "wait_s", type=click.FloatRange(0, 86_400), help="Wait up to this many seconds for results."
)
@click.option("--targets-key", type=ExistingPath(dir_okay=False), help="Offline TUF targets key.")
@connection_options
@json_option
@click.pass_context
def queue(
    ctx: click.Context,
    variants: tuple[str, ...],
    devices: tuple[str, ...],
    group: str | None,
    profile: tuple[str, ...],
    job_tags: tuple[str, ...],
    runs: int,
    warmup: int,
    min_seconds: float,
    threads: int | None,
    wait_s: float | None,
    targets_key: str | None,
    as_json: bool,
) -> None:
    """Queue a bench job of VARIANTS on the devices chosen by --device, --group, --profile or --tag."""
    client = bench_client(ctx)
    job = client.queue(
        list(variants),
        **device_selector(devices, group, profile, job_tags),
        runs=runs,
        warmup=warmup,
        min_seconds=min_seconds,
        threads=threads,
        targets_key=targets_key,
    )
    if wait_s:
        job = wait_for_job(client, job["id"], wait_s, show=not as_json)
    if as_json:
        emit_json(job)
        return
    console.print(
        f"queued {job['id']}: {len(job['variants'])} variant(s) on {len(job['tasks'])} device(s); "
        f"TUF targets: {job['tuf']}",
        markup=False,
    )
    if wait_s:
        render_results(job)
    else:
        console.print(f"results: liteship fleet bench results {job['id']}", markup=False)


@bench.command("results")
@click.argument("job_id")
@click.option(
    "--wait", "wait_s", type=click.FloatRange(0, 86_400), help="Wait up to this many seconds first."
)
@connection_options
@json_option
@click.pass_context
def results(ctx: click.Context, job_id: str, wait_s: float | None, as_json: bool) -> None:
    """Show a job's figures per device and variant (init, p50/p95/p99, RSS) and each device's profile."""
    client = bench_client(ctx)
    job = wait_for_job(client, job_id, wait_s, show=not as_json) if wait_s else client.job(job_id)
    if as_json:
        emit_json(job)
        return
    render_results(job)


@bench.command("list")
@connection_options
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List bench jobs, newest first."""
    rows = bench_client(ctx).jobs()
    if as_json:
        emit_json(rows)
        return
    table = Table("job", "created (UTC)", "variants", "devices", "state")
    for j in rows:
        done = sum(t["state"] not in ("queued", "running") for t in j["tasks"])
        table.add_row(
            escape(j["id"]),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(j["created_at"])),
            escape(", ".join(v["name"] for v in j["variants"])),
            f"{done}/{len(j['tasks'])} answered",
            j["state"],
        )
    console.print(table)


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _mib(v: int | None) -> str:
    return "–" if v is None else f"{v / (1 << 20):.1f}"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_results(job: dict[str, Any]) -> None:
    """One table: a row per device × variant; then each device's state, profile and how it ran."""
    from liteship.fleet.jobs import profile_group

    table = Table(title=f"{job['id']} ({job['state']}): latency of invoke in ms", title_justify="left")
    for col in ("device", "group", "variant", "threads", "init", "p50", "p95", "p99", "RSS MiB"):
        table.add_column(
            col, no_wrap=True, justify="left" if col in ("device", "group", "variant") else "right"
        )
    errors: list[str] = []
    for t in job["tasks"]:
        group = profile_group(t.get("profile") or {})
        if not t.get("results"):
            table.add_row(escape(t["device_id"]), escape(group), "–", "", "", "", "", "", "")
            errors.append(f"{t['device_id']}: {t['state']}: {t.get('error') or 'no figures yet'}")
            continue
        for r in t["results"]:
            table.add_row(  # device strings are escaped: a profile of "[/]" is text, not markup
                escape(t["device_id"]),
                escape(group),
                escape(r["name"]),
                str(r.get("threads") or "–"),
                _ms(r.get("init_ms")),
                _ms(r.get("p50_ms")),
                _ms(r.get("p95_ms")),
                _ms(r.get("p99_ms")),
                _mib(r.get("rss_delta_bytes")),
            )
            if not r["ok"]:
                errors.append(f"{t['device_id']} {r['name']}: {_short(r.get('error') or 'failed')}")
    console.print(table)
    for line in errors:
        console.print(f"  error {line}", markup=False, soft_wrap=True)
    for t in job["tasks"]:
        mode = t.get("mode") or {}
        how = ", ".join(f"{k}={v}" for k, v in mode.items()) or "–"
        console.print(f"{t['device_id']}: {t['state']}; live loop: {how}", markup=False)
