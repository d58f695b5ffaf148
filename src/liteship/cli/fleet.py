"""``liteship serve`` (the fleet server) and ``liteship fleet …`` (its admin client over HTTP)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from liteship.cli._common import ExistingPath, console, emit_json, json_option, parse_floats
from liteship.cli._fleet import admin_client, connection_options
from liteship.cli.fleet_bench import bench
from liteship.cli.fleet_jobs import profile_cmd, validate
from liteship.cli.fleet_samples import capture, samples
from liteship.errors import LiteshipError
from liteship.fleet.profile import group_key

# the library's messages name parameters; the CLI shows its flags (see STYLE.md)
SERVE_FLAGS = {
    "`port`": "--port",
    "`host`": "--host",
    "`data_dir`": "--data",
    "`workers`": "--workers",
    "`database_url`": "--db",
    "`artifacts`": "--artifacts",
    "`mirrors`": "--mirror",
}
FLEET_FLAGS = {
    "`server`": "--server",
    "`token`": "--token",
    "`trusted_keys`": "`liteship serve --trusted-key PUBLISHER.pub`",
    "`targets_key`": "--targets-key",
}


@contextlib.contextmanager
def _flag_names(flags: dict[str, str]) -> Iterator[None]:
    """Re-raise a library error with the CLI's flag names in its text."""
    try:
        yield
    except LiteshipError as e:
        text = str(e)
        for name, flag in flags.items():
            text = text.replace(name, flag)
        e.args = (text,)
        raise


@click.command("serve")
@click.option("--db", "db", metavar="URL", help="Database URL. Defaults to a SQLite file in --data.")
@click.option(
    "--data", "data_dir", default="./liteship-data", show_default=True, help="Artifacts, TUF, SQLite."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 for every interface (weak tokens are then refused).",
)
@click.option(
    "--port", default=8700, show_default=True, type=click.IntRange(1, 65535), help="TCP port to listen on."
)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Needs PostgreSQL if > 1."
)
@click.option(
    "--trusted-key", "trusted_keys", multiple=True, metavar="PUB", help="Publisher public key (repeatable)."
)
@click.option(
    "--artifacts",
    metavar="URL",
    help="Where packages are stored: s3://BUCKET/PREFIX (endpoint: LITESHIP_S3_ENDPOINT_URL; credentials: "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or a folder. Defaults to DATA/artifacts.",
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="URL",
    help="Base URL of an (untrusted) mirror or CDN of /tuf/targets/, sent to devices (repeatable, in order).",
)
def serve_cmd(
    db: str | None,
    data_dir: str,
    host: str,
    port: int,
    workers: int,
    trusted_keys: tuple[str, ...],
    artifacts: str | None,
    mirrors: tuple[str, ...],
) -> None:
    """Start the fleet (OTA) server: registry, TUF distribution, rollouts, telemetry, dashboard.

    Without LITESHIP_ADMIN_TOKEN / LITESHIP_ENROLLMENT_TOKEN, random tokens are generated on first
    start, kept in DATA/secrets.json (mode 0600) and shown in the start-up banner.
    """
    from liteship.fleet.serve import serve
    from liteship.fleet.settings import Settings

    with _flag_names(SERVE_FLAGS):
        settings = Settings.from_env(
            database_url=db,
            data_dir=data_dir,
            trusted_keys=list(trusted_keys) or None,
            artifacts=artifacts,
            mirrors=list(mirrors) or None,
        )
        serve(settings, host=host, port=port, workers=workers, on_ready=_banner)


def _banner(info: Any) -> None:
    """What a person needs right after start: where the server is, its tokens, the next commands."""
    lines = [f"liteship fleet server listening on {info.url}", f"  dashboard         {info.dashboard_url}"]
    env = {"admin_token": "LITESHIP_ADMIN_TOKEN", "enrollment_token": "LITESHIP_ENROLLMENT_TOKEN"}
    shown = {}
    for name, label in (("admin_token", "admin token"), ("enrollment_token", "enrollment token")):
        source = info.token_sources[name]
        if source == "generated":
            text = f"{info.tokens[name]}  (new; saved in {info.secrets_file}, mode 0600)"
            shown[name] = info.tokens[name]
        elif source == "stored":
            text = f"in {info.secrets_file}"
        else:
            text = f"from ${env[name]}"
        if name in info.weak_tokens:
            text += f"  [weak: {info.weak_tokens[name]}; accepted only on loopback]"
        lines.append(f"  {label:<17} {text}")
    lines.append(f"  TUF root          {info.tuf_root}  (give it to devices: agent enroll --tuf-root)")
    lines.append(f"  data              {info.data_dir}  (database: {info.database})")
    keys = (
        ", ".join(info.trusted_keys)
        if info.trusted_keys
        else ("none: publishing is refused until you restart with --trusted-key PUBLISHER.pub")
    )
    lines.append(f"  trusted keys      {keys}")
    admin = shown.get("admin_token", "<admin token>")
    enroll = shown.get("enrollment_token", "<enrollment token>")
    lines += [
        "next:",
        f"  liteship fleet publish MODEL.lsp --server {info.url} --token {admin}",
        f"  liteship fleet rollout start MODEL_ID VERSION --server {info.url} --token {admin}",
        f"  liteship agent enroll --server {info.url} --enrollment-token {enroll} --device-id DEVICE "
        f"--model-id MODEL_ID --key PUBLISHER.pub --tuf-root {info.tuf_root}",
        "stop with Ctrl+C.",
    ]
    click.echo("\n".join(lines))  # plain text: tokens and commands must copy-paste without wrapping


class _FleetGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        with _flag_names(FLEET_FLAGS):
            return super().invoke(ctx)


@click.group("fleet", cls=_FleetGroup)
@connection_options
def fleet_cmd() -> None:
    """Talk to a fleet server: publish, rollouts, devices, drift, field capture and samples.

    \b
    The server is --server, else $LITESHIP_SERVER, else http://127.0.0.1:8700 (a server on this
    machine started with `liteship serve`). The admin token is --token, else $LITESHIP_TOKEN; both
    options go before or after the sub-command.
    """


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
        console.print(f"  {when}  {d['action']:<8} by {d['by']}: {escape('; '.join(d['reasons']))}")
    nxt = r.get("next")
    if nxt:
        console.print(f"  next: {nxt['action']} — {escape('; '.join(nxt['reasons']))}", soft_wrap=True)
    for name, g in sorted((r.get("groups") or {}).items()):  # per hardware group (issue 24)
        state = "halted" if g.get("halted") else (g.get("next") or {}).get("action", "")
        console.print(
            f"  group {escape(name)}: {g.get('candidate', 0)} candidate / {g.get('control', 0)} control "
            f"devices, {state} (halt scope {r.get('halt_scope', 'release')})",
            soft_wrap=True,
        )


def _render_plan(r: dict[str, Any]) -> None:
    """Devices per arm per stage, and the warnings of a stage that cannot decide."""
    plan = r.get("plan") or []
    if plan:
        table = Table("stage", "percent", "candidate devices", "control devices", "can decide")
        for p in plan:
            table.add_row(
                str(p["stage"]),
                f"{p['percent']:g} %",
                str(p["candidate_devices"]),
                str(p["control_devices"]),
                "yes" if p["can_decide"] else "[b]no[/]",
            )
        console.print(table)
    for warning in r.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


@fleet_cmd.command("publish")
@click.argument("packages", nargs=-1, required=True, type=ExistingPath(dir_okay=False))
@click.option("--channel", help="Also point this channel at the release.")
@click.option("--targets-key", type=ExistingPath(dir_okay=False), help="Offline TUF targets key.")
@connection_options
@json_option
@click.pass_context
def publish(
    ctx: click.Context, packages: tuple[str, ...], channel: str | None, targets_key: str | None, as_json: bool
) -> None:
    """Publish signed packages (refused if unsigned, tampered or not newer).

    \b
    The variants of one release (`liteship package --variant …`) are published together: the
    default variant first (it creates the release), then the others, each a TUF target of its own.
    """
    client = admin_client(ctx)
    results = [
        client.publish(p, channel=channel, targets_key=targets_key) for p in _default_variant_first(packages)
    ]
    if as_json:
        emit_json(results[0] if len(results) == 1 else results)
        return
    for result in results:
        variant = f" variant {result['variant']}" if result.get("variant") else ""
        console.print(
            f"published {result['model_id']} {result['version']}{variant} ({result['size']} bytes, "
            f"sha256 {result['sha256'][:12]}…); TUF target: {result['tuf']}",
            markup=False,
            soft_wrap=True,
        )


def _default_variant_first(packages: tuple[str, ...]) -> list[str]:
    """The packages in publishing order: a release's default variant before its other variants (the
    default creates the release). Packages whose manifest cannot be read keep their place: the server
    refuses them with its own message."""
    from liteship.package.archive import ArchiveReader
    from liteship.package.manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES

    def rank(path: str) -> int:
        try:
            with ArchiveReader(path) as reader:
                raw = json.loads(reader.read(MANIFEST_NAME, MAX_MANIFEST_BYTES))
        except (LiteshipError, OSError, ValueError, KeyError):
            return 0
        variant = raw.get("variant") if isinstance(raw, dict) else None
        return 1 if isinstance(variant, dict) and not variant.get("default") else 0

    return sorted(packages, key=rank)  # stable: the given order otherwise


@fleet_cmd.group("rollout")
@connection_options
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
@click.option(
    "--min-arm-devices",
    type=click.IntRange(0, 100_000),
    default=0,
    show_default=True,
    help="Small fleets: put at least N devices on each arm from the first stage (a fleet of fewer than "
    "2·N devices is split in halves; 0: the stage percentages alone decide). The engine also needs "
    "min_devices (default 10) per arm: with fewer devices add --threshold min_devices=N.",
)
@click.option(
    "--halt-scope",
    type=click.Choice(["release", "group"]),
    default="release",
    show_default=True,
    help="A candidate with variants is decided per hardware group: a worse group halts the whole "
    "rollout (release) or only itself while the other groups go on (group).",
)
@click.option(
    "--tag",
    "rollout_tags",
    multiple=True,
    metavar="TAG",
    help="Only devices with this tag (repeatable: all).",
)
@json_option
@connection_options
@click.pass_context
def rollout_start(
    ctx: click.Context,
    model_id: str,
    version: str,
    control: str | None,
    stages: str | None,
    thresholds: tuple[str, ...],
    min_arm_devices: int,
    halt_scope: str,
    rollout_tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Roll VERSION of MODEL_ID out beside the control, in stages.

    \b
    Prints how many of the registered devices each stage puts on each arm, and says when a stage
    can never reach the engine's min_devices (default 10 per arm): with the default stages 2/15/100
    a fleet needs about 500 devices for stage 1. Small fleets: --min-arm-devices 10 with 20 devices or
    more; with fewer, N = half the fleet: --min-arm-devices N --threshold min_devices=N (the warning
    names N for the devices it sees).
    """
    parsed: dict[str, float] = {}
    for item in thresholds:
        name, _, value = item.partition("=")
        try:
            parsed[name] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"expected NAME=NUMBER, got {item!r}", param_hint="--threshold"
            ) from None
    client = admin_client(ctx)
    checked = _preflight_warning(client, model_id, version, show=not as_json)
    r = client.start_rollout(
        model_id,
        version,
        control_version=control,
        stages=list(parse_floats(stages, "--stages") or ()),
        thresholds=parsed,
        min_arm_devices=min_arm_devices,
        halt_scope=halt_scope,
        tags=list(rollout_tags),
    )
    if as_json:
        emit_json({**r, "preflight": checked} if checked is not None else r)
        return
    _render_rollout(r)
    _render_plan(r)


def _preflight_warning(client: Any, model_id: str, version: str, show: bool) -> dict[str, Any] | None:
    """Warn (stderr) about devices whose runtime could not load the candidate in a device job, and how
    many were never checked (liteship.fleet.preflight). Never stops the rollout; None if unknown."""
    try:
        checked: dict[str, Any] = client._call(
            "GET", "/api/v1/bench/preflight", params={"model_id": model_id, "version": version}
        )
    except LiteshipError:
        return None  # an older server, or no such release: start_rollout says what is wrong
    if show and checked["cannot_load"]:
        rows = {d["device_id"]: d for d in checked["devices"]}
        click.echo(
            f"warning: {len(checked['cannot_load'])} device(s) could not load {model_id} {version}'s model "
            "in a device job; a rollout may put them on the candidate arm (they would revert):",
            err=True,
        )
        for device_id in checked["cannot_load"]:
            d = rows[device_id]
            click.echo(f"  {device_id} ({d['group']}, job {d['job_id']}): {d['error']}", err=True)
    if show and checked["unchecked"]:
        click.echo(
            f"note: {len(checked['unchecked'])} device(s) of {model_id} have not loaded this model in a device "
            f"job yet (check them: liteship fleet bench MODEL.tflite --runs 1 --warmup 0 --device ID…).",
            err=True,
        )
    return checked


@rollout.command("status")
@click.argument("rollout_id", type=int, required=False)
@click.option("--model", "model_id", help="Only rollouts of this model.")
@json_option
@connection_options
@click.pass_context
def rollout_status(ctx: click.Context, rollout_id: int | None, model_id: str | None, as_json: bool) -> None:
    """Show one rollout with its decisions, or all rollouts."""
    result = admin_client(ctx).rollouts(rollout_id, model_id)
    if as_json:
        emit_json(result)
        return
    for r in [result] if rollout_id is not None else result:
        _render_rollout(r)
        if rollout_id is not None:
            _render_plan(r)


def _action(name: str, doc: str) -> click.Command:
    @click.argument("rollout_id", type=int)
    @connection_options
    @json_option
    @click.pass_context
    def cmd(ctx: click.Context, rollout_id: int, as_json: bool) -> None:
        r = admin_client(ctx).rollout_action(rollout_id, name)
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
    rollout.add_command(_action(_name, _doc))  # `fleet rollout abort 3`, as `fleet rollout start` reads
    if _name != "evaluate":
        fleet_cmd.add_command(_action(_name, _doc))  # and the short form, `fleet abort 3`


def _key_values(items: tuple[str, ...], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=flag)
        out[key] = value
    return out


@fleet_cmd.command("devices")
@click.option(
    "--profile",
    "profile",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only devices whose profile matches, e.g. machine=aarch64 or isa=dotprod (repeatable).",
)
@click.option("--group-by", "group_by", metavar="KEY", help="Group by a profile field, e.g. cpu_model.")
@json_option
@connection_options
@click.pass_context
def devices(ctx: click.Context, profile: tuple[str, ...], group_by: str | None, as_json: bool) -> None:
    """List devices: version run and assigned, profile, health, own reverts, last check-in.

    \b
    The profile is what the agent reports at check-in (machine, cpu_model, cores, isa, memory_mb,
    os, python, litert, accelerators, accelerator). Reverts count only those the device decided.
    """
    rows = admin_client(ctx).devices(_key_values(profile, "--profile"))
    if group_by:
        groups: dict[str, list[dict[str, Any]]] = {}
        for d in rows:
            groups.setdefault(group_key(d.get("runtime"), group_by), []).append(d)
        if as_json:
            emit_json({"group_by": group_by, "groups": groups})
            return
        table = Table(group_by, "devices", "versions", "ids")
        for value, members in sorted(groups.items()):
            versions = sorted({d["model_version"] or "—" for d in members})
            ids = ", ".join(d["id"] for d in members[:8]) + (" …" if len(members) > 8 else "")
            table.add_row(escape(value), str(len(members)), escape(", ".join(versions)), escape(ids))
        console.print(table)
        return
    if as_json:
        emit_json(rows)
        return
    table = Table(
        "device",
        "model",
        "running (variant)",
        "assigned (variant)",
        "profile",
        "health",
        "reverts",
        "downloaded",
        "last check-in (UTC)",
    )
    for d in rows:
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d["last_seen"])) if d["last_seen"] else "never"
        table.add_row(  # every string a device sent is escaped: "[/]" is a version, not markup
            escape(d["id"]),
            escape(d["model_id"] or "—"),
            escape((d["model_version"] or "—") + (f" ({d['variant']})" if d.get("variant") else "")),
            escape(
                (d.get("assigned_version") or "—")
                + (f" ({d['assigned_variant']})" if d.get("assigned_variant") else "")
            ),
            escape(d.get("profile_summary") or "—"),
            escape(d.get("health_summary") or "—"),
            str(d.get("reverts", 0)),
            f"{d.get('downloaded_bytes', 0):,} B",
            seen,
        )
    console.print(table)


@fleet_cmd.command("tag")
@click.argument("device_id")
@click.option("--add", "add", multiple=True, metavar="TAG", help="Add a tag (repeatable), e.g. ring=canary.")
@click.option("--remove", "remove", multiple=True, metavar="TAG", help="Remove a tag (repeatable).")
@click.option(
    "--window",
    "windows",
    multiple=True,
    metavar="HH:MM-HH:MM",
    help="The device's own update window in its local time (repeatable; replaces the earlier ones).",
)
@click.option("--no-windows", is_flag=True, help="Remove the device's own update windows.")
@json_option
@connection_options
@click.pass_context
def tag(
    ctx: click.Context,
    device_id: str,
    add: tuple[str, ...],
    remove: tuple[str, ...],
    windows: tuple[str, ...],
    no_windows: bool,
    as_json: bool,
) -> None:
    """Set a device's cohort tags and its own update windows (issue 24)."""
    body: dict[str, Any] = {"add_tags": list(add), "remove_tags": list(remove)}
    if windows or no_windows:
        body["update_windows"] = [] if no_windows else list(windows)
    r = admin_client(ctx).set_device(device_id, **body)
    if as_json:
        emit_json(r)
        return
    console.print(
        f"{r['device_id']}: tags {', '.join(r['tags']) or 'none'}; update windows "
        f"{', '.join(r['update_windows']) or 'any time'}",
        markup=False,
        soft_wrap=True,
    )


@fleet_cmd.command("pin")
@click.argument("model_id")
@click.argument("tag_name", metavar="TAG")
@click.argument("version", required=False)
@click.option("--remove", is_flag=True, help="Remove the pin of TAG.")
@json_option
@connection_options
@click.pass_context
def pin(
    ctx: click.Context, model_id: str, tag_name: str, version: str | None, remove: bool, as_json: bool
) -> None:
    """Pin the devices tagged TAG to VERSION of MODEL_ID (whatever channels and rollouts say)."""
    if (version is None) != remove:
        raise click.UsageError("give VERSION to pin, or --remove to unpin (not both).")
    r = admin_client(ctx).pin(model_id, tag_name, None if remove else version)
    if as_json:
        emit_json(r)
        return
    text = ", ".join(f"{t} → {v}" for t, v in sorted(r.items())) or "none"
    console.print(f"{model_id} pins: {text}", markup=False, soft_wrap=True)


@fleet_cmd.command("windows")
@click.argument("tag_name", metavar="TAG")
@click.argument("windows", nargs=-1, metavar="[HH:MM-HH:MM]...")
@json_option
@connection_options
@click.pass_context
def windows_cmd(ctx: click.Context, tag_name: str, windows: tuple[str, ...], as_json: bool) -> None:
    """Set the update windows (device-local time) of every device tagged TAG; none clears them."""
    r = admin_client(ctx).set_tag_windows(tag_name, list(windows))
    if as_json:
        emit_json(r)
        return
    for t, ws in sorted(r.items()):
        console.print(f"{t}: {', '.join(ws)}", markup=False, soft_wrap=True)


@fleet_cmd.command("models")
@connection_options
@json_option
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List models with their releases and channels."""
    rows = admin_client(ctx).models()
    if as_json:
        emit_json(rows)
        return
    table = Table("model", "version", "channels", "size", "sha256")
    for m in rows:
        for r in m["releases"]:
            table.add_row(m["id"], r["version"], ", ".join(r["channels"]), str(r["size"]), r["sha256"][:12])
    console.print(table)


@fleet_cmd.command("drift")
@click.argument("model_id")
@click.option("--version", help="Only this version.")
@click.option("--period", "period_s", default=3600.0, show_default=True, help="Seconds per point.")
@json_option
@connection_options
@click.pass_context
def drift(ctx: click.Context, model_id: str, version: str | None, period_s: float, as_json: bool) -> None:
    """PSI of live confidence against the package's reference (warn 0.1, alert 0.2).

    A release with variants shows a row per variant too (variant column), each against its own
    package's reference histogram (reference "variant") or, without one, the release's ("release").
    """
    series = admin_client(ctx).drift(model_id, version=version, period_s=period_s)
    if as_json:
        emit_json(series)
        return
    table = Table("version", "variant", "reference", "period (UTC)", "predictions", "PSI", "level")
    notes = []

    def rows(label: str, name: str, reference: str, s: dict[str, Any]) -> None:
        if not s["points"]:
            table.add_row(label, name, reference, "—", str(s.get("predictions", 0)), "—", s["latest_level"])
            if s.get("note"):
                notes.append(f"{label}{'' if name == 'all' else ' ' + name}: {s['note']}.")
            return
        for p in s["points"]:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(p["start"]))
            psi = "—" if p["psi"] is None else f"{p['psi']:.3f}"
            table.add_row(label, name, reference, when, str(p["predictions"]), psi, p["level"])

    for s in series:
        rows(escape(s["version"]), "all", "release" if s["has_reference"] else "—", s)
        for v in s.get("variants") or []:
            rows(escape(s["version"]), escape(v["variant"]), v.get("reference") or "—", v)
        if s.get("other_variant_windows"):
            notes.append(
                f"{s['version']}: {s['other_variant_windows']} window(s) named a variant the release "
                "does not have (counted in the release's figure only)."
            )
    console.print(table)
    for note in notes:
        console.print(escape(note), soft_wrap=True)
    _capture_hint(model_id, series)


def _capture_hint(model_id: str, series: list[dict[str, Any]]) -> None:
    """When drift is in the alert band: the next step, field capture with suggested rules (issue 25)."""
    from liteship.fleet.samples_client import suggest_capture, suggestion_command

    suggestion = suggest_capture(series)
    if suggestion is None:
        return
    console.print(
        f"Drift of {escape(model_id)} {escape(', '.join(suggestion['versions']))} passed the alert band. "
        "Next step: capture what the devices see, recalibrate on it and validate:",
        soft_wrap=True,
    )
    console.print(f"  {escape(suggestion_command(model_id, suggestion))}", soft_wrap=True, highlight=False)


for _group in (bench, validate, profile_cmd, capture, samples):
    fleet_cmd.add_command(_group)
