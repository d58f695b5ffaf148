"""``liteship agent``: run the device agent (the default), enroll a device, show its status."""

from __future__ import annotations

from pathlib import Path

import click

from liteship.cli._common import console, emit_json, json_option

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
    "--source", default="camera", show_default=True, help="camera[:N] | video:PATH | rtsp:URL | images:DIR"
)
@click.option(
    "--sink", default="stdout", show_default=True, help="stdout | file:PATH | http:URL (JSON per result)"
)
@click.option("--server", help="Fleet server URL. Defaults to the one stored at enrollment.")
@click.option("--token", help="Device token. Defaults to the one stored at enrollment.")
@click.option("--device-id", help="Device id. Defaults to the one stored at enrollment.")
@click.option(
    "--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Publisher public key."
)
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
@click.option("--loop", is_flag=True, help="Repeat an image folder or video file forever.")
@click.option("--max-frames", type=int, help="Stop after this many frames.")
def run(state_dir: Path, **options: object) -> None:
    """Run the inference loop, check in, update, and report telemetry until SIGTERM."""
    from liteship.agent.service import AgentConfig, run_agent

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
    "--key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Publisher public key.",
)
@click.option(
    "--tuf-root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The fleet's TUF root.json (out of band). Defaults to fetching it now (trust on first use).",
)
@json_option
def enroll(
    state_dir: Path,
    server: str,
    enrollment_token: str,
    device_id: str,
    model_id: str | None,
    key: Path,
    tuf_root: Path | None,
    as_json: bool,
) -> None:
    """Register this device; store its token, the trusted TUF root and the publisher key."""
    from liteship.agent.service import enroll as do_enroll

    out = do_enroll(
        state_dir,
        server=server,
        enrollment_token=enrollment_token,
        device_id=device_id,
        key=key,
        model_id=model_id,
        tuf_root=tuf_root,
    )
    emit_json(out) if as_json else console.print(
        f"enrolled [bold]{device_id}[/] with {out['server']} ({state_dir})"
    )


@cli.command()
@STATE_DIR
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Publisher public key."
)
@json_option
def install(state_dir: Path, package: Path, key: Path | None, as_json: bool) -> None:
    """Install a package file now (provisioning): verify, smoke-test, swap."""
    from liteship.agent.service import install_package

    out = install_package(state_dir, package, key=key)
    emit_json(out) if as_json else console.print(
        f"installed {out['model_id']} {out['installed']} (fallback: {out['previous']})"
    )


@cli.command()
@STATE_DIR
@json_option
def status(state_dir: Path, as_json: bool) -> None:
    """Current and previous versions, the health window, last check-in and last decision."""
    from liteship.agent.service import agent_status

    st = agent_status(state_dir)
    if as_json:
        emit_json(st)
        return
    console.print(f"device    {st.device_id or '-'} @ {st.server or '-'}")
    console.print(
        f"current   {st.current or '-'}"
        + (f"  (health window, since {st.pending['since']:.0f})" if st.pending else "")
    )
    console.print(f"previous  {st.previous or '-'}")
    if st.failed:
        console.print("failed    " + ", ".join(f"{v} ({f['reason'][:60]})" for v, f in st.failed.items()))
    ci = st.last_checkin
    console.print(
        f"check-in  {'ok' if ci and ci.get('ok') else 'failed' if ci else 'never'}"
        + (f" at {ci['at']:.0f}" if ci else "")
    )
    d = st.last_decision
    console.print(
        f"decision  {d['action']} {d.get('version') or ''} {d.get('reason', '')[:100]}"
        if d
        else "decision  -"
    )
    console.print(f"spool     {st.spooled_windows} window(s) waiting")


if __name__ == "__main__":  # pragma: no cover
    from liteship.cli._common import run_cli

    run_cli(cli)
