"""``liteship serve`` (the fleet server) and ``liteship fleet …`` (its admin client over HTTP)."""

from __future__ import annotations

import os
import time
from typing import Any

import click
from rich.table import Table

from liteship.cli._common import console, emit_json, json_option
from liteship.errors import UsageError


@click.command("serve")
@click.option("--db", "db", metavar="URL", help="Database URL. Defaults to a SQLite file in --data.")
@click.option(
    "--data", "data_dir", default="./liteship-data", show_default=True, help="Artifacts, TUF, SQLite."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Needs PostgreSQL if > 1."
)
@click.option(
    "--trusted-key", "trusted_keys", multiple=True, metavar="PUB", help="Publisher public key (repeatable)."
)
def serve_cmd(
    db: str | None, data_dir: str, host: str, port: int, workers: int, trusted_keys: tuple[str, ...]
) -> None:
    """Start the fleet (OTA) server: registry, TUF distribution, rollouts, telemetry, dashboard."""
    import uvicorn

    from liteship.fleet.app import create_app
    from liteship.fleet.settings import Settings

    settings = Settings.from_env(database_url=db, data_dir=data_dir, trusted_keys=list(trusted_keys) or None)
    if workers > 1 and settings.is_sqlite:
        raise UsageError(
            "several workers need PostgreSQL; SQLite serializes writers.",
            hint="Pass --db postgresql://user@host/db, or use --workers 1.",
        )
    console.print(f"liteship fleet server on http://{host}:{port} (dashboard: /dashboard, data: {data_dir})")
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
        return
    create_app(settings)  # migrate and initialize once before the workers start
    os.environ.update(
        {"LITESHIP_DATABASE_URL": settings.resolved_database_url(), "LITESHIP_DATA_DIR": data_dir}
    )
    if trusted_keys:
        os.environ["LITESHIP_TRUSTED_KEYS"] = ",".join(trusted_keys)
    uvicorn.run(
        "liteship.fleet.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


server_option = click.option(
    "--server", envvar="LITESHIP_SERVER", metavar="URL", help="Defaults to $LITESHIP_SERVER."
)
token_option = click.option(
    "--token", envvar="LITESHIP_TOKEN", metavar="TOKEN", help="Admin token ($LITESHIP_TOKEN)."
)


def _client(ctx: click.Context) -> Any:
    from liteship.fleet.client import FleetClient

    return FleetClient(ctx.obj["server"], ctx.obj["token"])


@click.group("fleet")
@server_option
@token_option
@click.pass_context
def fleet_cmd(ctx: click.Context, server: str | None, token: str | None) -> None:
    """Talk to a fleet server: publish, rollouts, devices, drift."""
    ctx.ensure_object(dict)
    ctx.obj.update(server=server, token=token)


def _render_rollout(r: dict[str, Any]) -> None:
    stages = " → ".join(
        f"[b]{s:g}%[/]" if i == r["stage_index"] else f"{s:g}%" for i, s in enumerate(r["stages"])
    )
    console.print(
        f"rollout {r['id']}: {r['model_id']} {r['control_version']} → {r['candidate_version']}  "
        f"[b]{r['state']}[/]  {stages}"
    )
    for d in r.get("decisions", [])[-5:]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d["at"]))
        console.print(f"  {when}  {d['action']:<8} by {d['by']}: {'; '.join(d['reasons'])}")


@fleet_cmd.command("publish")
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
@click.option("--channel", help="Also point this channel at the release.")
@click.option("--targets-key", type=click.Path(exists=True, dir_okay=False), help="Offline TUF targets key.")
@json_option
@click.pass_context
def publish(
    ctx: click.Context, package: str, channel: str | None, targets_key: str | None, as_json: bool
) -> None:
    """Publish a signed package (refused if unsigned, tampered or not newer)."""
    result = _client(ctx).publish(package, channel=channel, targets_key=targets_key)
    if as_json:
        emit_json(result)
        return
    console.print(
        f"published {result['model_id']} {result['version']} ({result['size']} bytes, "
        f"sha256 {result['sha256'][:12]}…); TUF target: {result['tuf']}"
    )


@fleet_cmd.group("rollout")
def rollout() -> None:
    """Start rollouts and show their status."""


@rollout.command("start")
@click.argument("model_id")
@click.argument("version")
@click.option("--control", help="Control version. Defaults to the stable channel.")
@click.option("--stages", help="Percent of devices per stage, e.g. 2,15,100.")
@click.option(
    "--threshold", "thresholds", multiple=True, metavar="NAME=VALUE", help="Decision threshold override."
)
@json_option
@click.pass_context
def rollout_start(
    ctx: click.Context,
    model_id: str,
    version: str,
    control: str | None,
    stages: str | None,
    thresholds: tuple[str, ...],
    as_json: bool,
) -> None:
    """Roll VERSION of MODEL_ID out beside the control, in stages."""
    from liteship.cli._common import parse_floats

    parsed: dict[str, float] = {}
    for item in thresholds:
        name, _, value = item.partition("=")
        try:
            parsed[name] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"expected NAME=NUMBER, got {item!r}", param_hint="--threshold"
            ) from None
    r = _client(ctx).start_rollout(
        model_id,
        version,
        control_version=control,
        stages=list(parse_floats(stages, "--stages") or ()),
        thresholds=parsed,
    )
    emit_json(r) if as_json else _render_rollout(r)


@rollout.command("status")
@click.argument("rollout_id", type=int, required=False)
@click.option("--model", "model_id", help="Only rollouts of this model.")
@json_option
@click.pass_context
def rollout_status(ctx: click.Context, rollout_id: int | None, model_id: str | None, as_json: bool) -> None:
    """Show one rollout with its decisions, or all rollouts."""
    result = _client(ctx).rollouts(rollout_id, model_id)
    if as_json:
        emit_json(result)
        return
    for r in [result] if rollout_id is not None else result:
        _render_rollout(r)


def _action(name: str, doc: str) -> click.Command:
    @click.argument("rollout_id", type=int)
    @json_option
    @click.pass_context
    def cmd(ctx: click.Context, rollout_id: int, as_json: bool) -> None:
        r = _client(ctx).rollout_action(rollout_id, name)
        emit_json(r) if as_json else _render_rollout(r)

    cmd.__doc__ = doc
    return click.command(name)(cmd)


for _name, _doc in (
    ("promote", "Make the candidate the stable version for every device."),
    ("abort", "Stop a rollout; every device goes back to the control."),
    ("pause", "Hold a rollout at its stage (no automatic decisions)."),
    ("resume", "Resume a paused rollout."),
    ("evaluate", "Run the decision engine now and record its verdict."),
):
    (rollout if _name == "evaluate" else fleet_cmd).add_command(_action(_name, _doc))


@fleet_cmd.command("devices")
@json_option
@click.pass_context
def devices(ctx: click.Context, as_json: bool) -> None:
    """List devices with the version they run and when they last checked in."""
    rows = _client(ctx).devices()
    if as_json:
        emit_json(rows)
        return
    table = Table("device", "model", "version", "last check-in")
    for d in rows:
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d["last_seen"])) if d["last_seen"] else "never"
        table.add_row(d["id"], d["model_id"] or "—", d["model_version"] or "—", seen)
    console.print(table)


@fleet_cmd.command("drift")
@click.argument("model_id")
@click.option("--version", help="Only this version.")
@click.option("--period", "period_s", default=3600.0, show_default=True, help="Seconds per point.")
@json_option
@click.pass_context
def drift(ctx: click.Context, model_id: str, version: str | None, period_s: float, as_json: bool) -> None:
    """PSI of live confidence against the package's reference (warn 0.1, alert 0.2)."""
    series = _client(ctx).drift(model_id, version=version, period_s=period_s)
    if as_json:
        emit_json(series)
        return
    table = Table("version", "period (UTC)", "predictions", "PSI", "level")
    for s in series:
        for p in s["points"] or [{"start": None, "predictions": 0, "psi": None, "level": "insufficient"}]:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(p["start"])) if p["start"] else "—"
            table.add_row(
                s["version"],
                when,
                str(p["predictions"]),
                "—" if p["psi"] is None else f"{p['psi']:.3f}",
                p["level"],
            )
    console.print(table)
