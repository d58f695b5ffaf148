"""``liteship agent``: run the device agent (the default), enroll a device, show its status."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from liteship.cli._accel import accelerator_option
from liteship.cli._common import ExistingPath, FiniteRange, console, emit_json, json_option
from liteship.errors import LiteshipError

# the library's messages name parameters and functions; the CLI shows its flags and commands
FLAGS = {
    "`key`": "`--key`",
    "`public_key`": "`--key`",
    "`enroll`": "`liteship agent enroll`",
    "`install_package`": "`liteship agent install --key publisher.pub PACKAGE.lsp`",
}


@contextlib.contextmanager
def _flag_names() -> Iterator[None]:
    """Re-raise a library error with the CLI's flag and command names in its text."""
    try:
        yield
    except LiteshipError as e:
        text = str(e)
        for name, flag in FLAGS.items():
            text = text.replace(name, flag)
        e.args = (text,)
        raise


STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/var/lib/liteship-agent"),
    show_default=True,
    help="Folder holding the model slots, state, spool and device token.",
)


class _DefaultRun(click.Group):
    """``liteship agent --source …`` means ``liteship agent run --source …``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultRun)
def cli() -> None:
    """Run the device agent (default command), or enroll / show the status of this device."""


@cli.command()
@STATE_DIR
@click.option(
    "--source", default="camera", show_default=True, help="camera[:N] | video:PATH | rtsp://URL | images:DIR"
)
@click.option(
    "--sink", default="stdout", show_default=True, help="stdout | file:PATH | http:URL (JSON per result)"
)
@click.option("--server", help="Fleet server URL. Defaults to the one stored at enrollment.")
@click.option("--token", help="Device token. Defaults to the one stored at enrollment.")
@click.option("--device-id", help="Device id. Defaults to the one stored at enrollment.")
@click.option("--key", type=ExistingPath(dir_okay=False, path_type=Path), help="Publisher public key.")
@click.option(
    "--poll-interval",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between check-ins (±20 % jitter).",
)
@click.option(
    "--window", "window_s", type=float, default=60.0, show_default=True, help="Seconds per telemetry window."
)
@click.option(
    "--health-inferences",
    type=int,
    default=50,
    show_default=True,
    help="Inferences in a new model's health window.",
)
@click.option(
    "--health-seconds",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds in a new model's health window.",
)
@click.option(
    "--latency-budget-ms", type=float, help="Health-window latency budget. Defaults to the package's ×1.5."
)
@click.option("--threads", "num_threads", type=int, help="LiteRT threads. Defaults to the number of cores.")
@accelerator_option(
    "Run the model (and the smoke test of each update) on this accelerator, e.g. gpu,cpu (LiteRT "
    "CompiledModel). One that fails to start falls back to the CPU and is logged. Defaults to the CPU."
)
@click.option("--loop", is_flag=True, help="Repeat an image folder or video file forever.")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option(
    "--max-fps",
    type=FiniteRange(0, 1000, min_open=True),
    help="At most this many frames per second (the loop sleeps between frames). Defaults to no limit; "
    "the achieved rate is shown by `agent status` and sent with every telemetry window.",
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="URL",
    help="Base URL of a target mirror or CDN, tried before the server's (repeatable, in order; TUF checks it).",
)
@click.option(
    "--bench-duty-cycle",
    type=click.FloatRange(0.01, 1.0),
    default=0.5,
    show_default=True,
    help="Largest share of time a fleet bench job may take; its steps run between frames.",
)
@click.option(
    "--download-min-rate",
    type=FiniteRange(1, 1e12),
    default=1024.0,
    show_default=True,
    help="Bytes per second every download (TUF metadata, model, bench variant) must keep up; a slower "
    "one is abandoned and retried at the next poll.",
)
@click.option(
    "--download-window",
    type=FiniteRange(0.1, 3600),
    default=10.0,
    show_default=True,
    help="Seconds over which --download-min-rate is judged.",
)
def run(state_dir: Path, **options: object) -> None:
    """Run the inference loop, check in, update, and report telemetry until SIGTERM."""
    from liteship.agent.service import AgentConfig, run_agent

    with _flag_names():
        run_agent(AgentConfig(state_dir=state_dir, **options))  # type: ignore[arg-type]


@cli.command()
@STATE_DIR
@click.option("--server", required=True, help="Fleet server URL.")
@click.option(
    "--enrollment-token",
    required=True,
    envvar="LITESHIP_ENROLLMENT_TOKEN",
    help="The fleet's enrollment token.",
)
@click.option("--device-id", required=True, help="This device's id.")
@click.option("--model-id", help="The model this device runs.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="A cohort tag, e.g. site=berlin or ring=canary (repeatable): rollouts, pins and update windows "
    "can target it.",
)
@click.option(
    "--key",
    required=True,
    type=ExistingPath(dir_okay=False, path_type=Path),
    help="Publisher public key.",
)
@click.option(
    "--tuf-root",
    type=ExistingPath(dir_okay=False, path_type=Path),
    help="The fleet's TUF root.json (out of band). Defaults to fetching it now (trust on first use).",
)
@json_option
def enroll(
    state_dir: Path,
    server: str,
    enrollment_token: str,
    device_id: str,
    model_id: str | None,
    tags: tuple[str, ...],
    key: Path,
    tuf_root: Path | None,
    as_json: bool,
) -> None:
    """Register this device; store its token, the trusted TUF root and the publisher key."""
    from liteship.agent.service import enroll as do_enroll

    with _flag_names():
        out = do_enroll(
            state_dir,
            server=server,
            enrollment_token=enrollment_token,
            device_id=device_id,
            key=key,
            model_id=model_id,
            tuf_root=tuf_root,
            tags=tags,
        )
    if as_json:
        emit_json(out)
        return
    if out["tuf_root"] == "pinned":
        console.print(f"pinned the TUF root from {out['tuf_root_source']}")
    else:
        console.print(
            f"trusting root.json from {out['tuf_root_source']} (trust on first use); "
            "pass --tuf-root to pin it",
            soft_wrap=True,
        )
    console.print(f"enrolled [bold]{device_id}[/] with {out['server']} ({state_dir})", soft_wrap=True)


@cli.command()
@STATE_DIR
@click.argument("package", type=ExistingPath(dir_okay=False, path_type=Path))
@click.option("--key", type=ExistingPath(dir_okay=False, path_type=Path), help="Publisher public key.")
@json_option
def install(state_dir: Path, package: Path, key: Path | None, as_json: bool) -> None:
    """Install a package file now (provisioning): verify, smoke-test, swap."""
    from liteship.agent.service import install_package

    with _flag_names():
        out = install_package(state_dir, package, key=key)
    fallback = f"fallback: {out['previous']}" if out["previous"] else "no fallback"
    emit_json(out) if as_json else console.print(
        f"installed {out['model_id']} {out['installed']} ({fallback})", soft_wrap=True
    )


@cli.command()
@STATE_DIR
@json_option
def status(state_dir: Path, as_json: bool) -> None:
    """Current and previous versions, the health window, last check-in and last decision."""
    from liteship.agent.service import agent_status

    with _flag_names():
        st = agent_status(state_dir)
    if as_json:
        emit_json(st)
        return
    lines = [f"device    {st.device_id or '-'} @ {st.server or '-'}"]
    current = f"current   {st.current or '-'}"
    if st.pending:
        done = st.pending.get("inferences", 0)
        current += f"  (health window since {_when(st.pending.get('since'))}, {done} inferences so far)"
    lines += [current, f"previous  {st.previous or '-'}"]
    for i, (version, failure) in enumerate(st.failed.items()):
        lines.append(
            f"{'failed' if i == 0 else '':<10}{version}: {failure['reason']} (at {_when(failure.get('at'))})"
        )
    ci = st.last_checkin
    if ci is None:
        lines.append("check-in  never")
    elif ci.get("ok"):
        lines.append(f"check-in  ok at {_when(ci.get('at'))}")
    else:
        lines.append(f"check-in  failed at {_when(ci.get('at'))}: {ci.get('error', '')}")
    d = st.last_decision
    if d:
        text = " ".join(x for x in (d["action"], d.get("version") or "") if x)
        reason = f": {d['reason']}" if d.get("reason") else ""
        lines.append(f"decision  {text} at {_when(d.get('at'))}{reason}")
    else:
        lines.append("decision  -")
    if st.last_downgrade:
        down = st.last_downgrade
        lines.append(f"downgrade {down.get('reason', '')} at {_when(down.get('at'))}")
    for i, h in enumerate(reversed(st.history[-5:])):  # newest first
        what = "sent back" if h.get("by") == "server" else "reverted"
        lines.append(
            f"{'history' if i == 0 else '':<10}ran {h.get('version') or '-'}, {what} to {h.get('to') or '-'} "
            f"by the {h.get('by', 'device')} at {_when(h.get('at'))}: {h.get('reason', '')}"
        )
    if st.rate:
        lines.append(
            f"rate      {st.rate.get('achieved_fps', 0):.1f} frames/s achieved"
            + (f" (limit {st.rate['max_fps']:g})" if st.rate.get("max_fps") else " (no limit)")
        )
    lines.append(f"spool     {st.spooled_windows} window(s) waiting")
    cap = st.capture
    if cap:
        state = (
            f"on ({', '.join(cap['rules'])}; {cap['per_hour']}/h, {cap['per_day']}/day; policy {cap['policy']}, "
            f"expires {_when(cap['expires'])})"
            if cap["on"]
            else "off"
        )
        lines.append(
            f"capture   {state}; {cap['pending']} sample(s) waiting ({cap['bytes']} bytes), "
            f"{cap['captured']} captured, {cap['uploaded']} uploaded, dropped: {cap['dropped_quota']} quota, "
            f"{cap['dropped_disk']} disk, {cap['dropped_busy']} busy, {cap['dropped_error']} write errors"
        )
    for line in lines:
        console.print(line, soft_wrap=True, markup=False)


def _when(at: Any) -> str:
    """``2026-05-01T10:20:25Z (3 min ago)`` from epoch seconds."""
    if not isinstance(at, (int, float)):
        return "(time unknown)"
    iso = dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{iso} ({_ago(time.time() - at)})"


def _ago(seconds: float) -> str:
    if seconds < 0:
        return "in the future: check the clock"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return f"{int(seconds)} s ago"


if __name__ == "__main__":  # pragma: no cover
    from liteship.cli._common import run_cli

    run_cli(cli)


@cli.command()
@json_option
def doctor(as_json: bool) -> None:
    """Which camera backends and accelerators this device can use, and why one cannot."""
    from liteship.agent.service import agent_doctor

    report = agent_doctor()
    if as_json:
        emit_json(report)
        return
    for cam in report.cameras:
        mark = "ok" if cam.usable else "unusable"
        console.print(f"camera  {cam.name:<10} {mark:<9} {cam.detail}", soft_wrap=True, markup=False)
        if cam.hint:
            console.print(f"{'':<29}fix: {cam.hint}", soft_wrap=True, markup=False)
    console.print(f"cpu     {report.cpu}", soft_wrap=True, markup=False)
    console.print(f"accel   {', '.join(report.accelerators)}", soft_wrap=True, markup=False)
    if report.accelerator_blocker:
        console.print(f"{'':<8}no CompiledModel: {report.accelerator_blocker}", soft_wrap=True, markup=False)
