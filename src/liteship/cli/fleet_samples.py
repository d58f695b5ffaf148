"""``liteship fleet capture on|off|status MODEL`` and ``liteship fleet samples list|label|export``:
field capture (issue 25), from switching it on to a calibration/validation ``.npz`` for the pipeline."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from liteship.cli._common import console, emit_json, json_option
from liteship.cli._fleet import connection_options
from liteship.errors import UsageError


def _client(ctx: click.Context) -> Any:
    from liteship.fleet.samples_client import SamplesClient

    obj = ctx.ensure_object(dict)
    return SamplesClient(obj.get("server"), obj.get("token"))


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) if t else "—"


@click.group("capture")
@connection_options
def capture() -> None:
    """Field capture: devices keep a bounded sample of their inputs and upload it.

    \b
    Examples:
      liteship fleet capture on digits --trigger low-confidence:0.6 --trigger random@0.02
      liteship fleet capture status digits
      liteship fleet capture off digits
    Off by default. The policy is signed into the fleet's TUF targets; devices verify it before
    they obey it, and switch capture off when the server stops offering it.
    """


@capture.command("on")
@click.argument("model_id")
@click.option(
    "--trigger",
    "triggers",
    multiple=True,
    required=True,
    metavar="RULE",
    help="low-confidence:0.6, out-of-range, class:3,7 or random; optional @RATE (0..1). Repeatable.",
)
@click.option(
    "--per-hour",
    default=60,
    show_default=True,
    type=click.IntRange(0, 3600),
    help="Samples per device per hour.",
)
@click.option(
    "--per-day",
    default=500,
    show_default=True,
    type=click.IntRange(0, 20_000),
    help="Samples per device per day.",
)
@click.option(
    "--disk-mb",
    default=50.0,
    show_default=True,
    type=click.FloatRange(0.001, 4096),
    help="Disk cap per device.",
)
@click.option(
    "--retention-days",
    default=7.0,
    show_default=True,
    type=click.FloatRange(0.001, 30),
    help="An un-uploaded sample is deleted on the device after this.",
)
@click.option(
    "--keep-image", is_flag=True, help="Also keep the original image (default: the model input only)."
)
@click.option("--version", "versions", multiple=True, help="Only while running this version (repeatable).")
@click.option(
    "--device", "devices", multiple=True, metavar="ID", help="Only these devices (a cohort; repeatable)."
)
@click.option(
    "--days",
    default=7.0,
    show_default=True,
    type=click.FloatRange(0.01, 365),
    help="The policy expires after this.",
)
@json_option
@connection_options
@click.pass_context
def capture_on(
    ctx: click.Context,
    model_id: str,
    triggers: tuple[str, ...],
    per_hour: int,
    per_day: int,
    disk_mb: float,
    retention_days: float,
    keep_image: bool,
    versions: tuple[str, ...],
    devices: tuple[str, ...],
    days: float,
    as_json: bool,
) -> None:
    """Turn capture on for MODEL_ID (every device of it, or --device ones)."""
    from liteship.fleet.samples_client import parse_trigger

    rules = [parse_trigger(t) for t in triggers]
    body: dict[str, Any] = dict(
        rules=rules,
        per_hour=per_hour,
        per_day=per_day,
        disk_mb=disk_mb,
        retention_days=retention_days,
        keep_image=keep_image,
        versions=list(versions),
        days=days,
    )
    if devices:
        body["devices"] = list(devices)
    out = _client(ctx).capture_on(model_id, **body)
    if as_json:
        emit_json(out)
        return
    doc = out["document"]
    console.print(
        f"capture on for {escape(model_id)}: {', '.join(escape(t) for t in triggers)}; "
        f"{doc['per_hour']}/h, {doc['per_day']}/day, {doc['disk_bytes'] >> 20} MiB per device; "
        f"expires {_when(doc['expires'])} UTC; policy {out['sha256'][:12]} ({out['tuf']}).",
        soft_wrap=True,
    )
    if out["tuf"] != "signed":
        console.print(
            "The targets key is offline: sign with `liteship fleet publish … --targets-key` "
            "before devices are offered the policy.",
            soft_wrap=True,
        )


@capture.command("off")
@click.argument("model_id")
@json_option
@connection_options
@click.pass_context
def capture_off(ctx: click.Context, model_id: str, as_json: bool) -> None:
    """Turn capture off for MODEL_ID (devices stop at their next check-in)."""
    out = _client(ctx).capture_off(model_id)
    if as_json:
        emit_json(out)
        return
    console.print(f"capture off for {escape(model_id)} ({out['ended']} policy ended).")


@capture.command("status")
@click.argument("model_id")
@json_option
@connection_options
@click.pass_context
def capture_status(ctx: click.Context, model_id: str, as_json: bool) -> None:
    """The active policy of MODEL_ID and the samples received so far."""
    out = _client(ctx).capture_status(model_id)
    if as_json:
        emit_json(out)
        return
    p = out["policy"]
    if p is None:
        console.print(f"capture is off for {escape(model_id)}.")
    else:
        doc = p["document"]
        rules = ", ".join(
            r["trigger"]
            + (f"<{r['threshold']}" if "threshold" in r else "")
            + (f" {r['classes']}" if "classes" in r else "")
            + (f" @{r['rate']}" if r.get("rate", 1) < 1 else "")
            for r in doc["rules"]
        )
        console.print(
            f"capture on for {escape(model_id)} since {_when(p['created_at'])} UTC: {escape(rules)}; "
            f"{doc['per_hour']}/h, {doc['per_day']}/day; expires {_when(doc['expires'])} UTC ({p['tuf']}).",
            soft_wrap=True,
        )
    by = ", ".join(f"{k} {v}" for k, v in sorted(out["by_trigger"].items())) or "none"
    console.print(
        f"samples: {out['samples']} ({by}); labeled {out['labeled']}, discarded {out['discarded']}."
    )


@click.group("samples")
@connection_options
def samples() -> None:
    """Field samples the devices uploaded: list, label, export for the pipeline.

    \b
    Examples:
      liteship fleet samples list digits --trigger low-confidence
      liteship fleet samples label 42 7          # sample 42 is a 7
      liteship fleet samples export digits --since 24h -o field.npz
    """


@samples.command("list")
@click.argument("model_id", required=False)
@click.option("--version", help="Only this version.")
@click.option("--trigger", help="Only this trigger.")
@click.option("--since", help="Captured since: an age (24h, 7d) or a date (2026-12-01T08:00, UTC).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
@connection_options
@click.pass_context
def samples_list(
    ctx: click.Context,
    model_id: str | None,
    version: str | None,
    trigger: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Samples, newest first."""
    from liteship.fleet.samples_client import parse_since

    rows = _client(ctx).samples(
        model_id=model_id,
        version=version,
        trigger=trigger,
        since=parse_since(since) if since else None,
        limit=limit,
    )
    if as_json:
        emit_json(rows)
        return
    table = Table(
        "id", "model", "version", "device", "trigger", "prediction", "confidence", "label", "captured (UTC)"
    )
    for r in rows:
        conf = "—" if r["confidence"] is None else f"{r['confidence']:.2f}"
        pred = f"{r['predicted']}" + (f" {r['predicted_label']}" if r["predicted_label"] else "")
        table.add_row(
            str(r["id"]),
            r["model_id"],
            r["version"],
            r["device_id"],
            r["trigger"],
            escape(pred),
            conf,
            "—" if r["label"] is None else str(r["label"]),
            _when(r["captured_at"]),
        )
    console.print(table)


@samples.command("label")
@click.argument("sample", type=click.IntRange(1, 2**31 - 1))
@click.argument("label", required=False, type=click.IntRange(0, 2**20 - 1))
@click.option("--discard", is_flag=True, help="Discard the sample (never exported).")
@json_option
@connection_options
@click.pass_context
def samples_label(ctx: click.Context, sample: int, label: int | None, discard: bool, as_json: bool) -> None:
    """Label SAMPLE with a class index LABEL, or --discard it."""
    if label is None and not discard:
        raise UsageError("give a class index to label the sample with, or --discard.")
    out = _client(ctx).label(sample, label=label, discarded=True if discard else None)
    if as_json:
        emit_json(out)
        return
    state = "discarded" if out["discarded"] else f"labeled {out['label']}"
    console.print(f"sample {sample} {state}.")


@samples.command("export")
@click.argument("model_id")
@click.option("--since", help="Captured since: an age (24h, 7d) or a date (2026-12-01T08:00, UTC).")
@click.option("--version", help="Only this version's samples.")
@click.option("--labeled-only", is_flag=True, help="Only labeled samples (validation data needs labels).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .npz to write.")
@json_option
@connection_options
@click.pass_context
def samples_export(
    ctx: click.Context,
    model_id: str,
    since: str | None,
    version: str | None,
    labeled_only: bool,
    output: str,
    as_json: bool,
) -> None:
    """Write MODEL_ID's samples as a .npz the pipeline reads (calibration: x; validation: x and y).

    x holds the inputs in the raw domain (the devices' preprocessing undone), so the pipeline's own
    preprocessing applies as to any .npz; y is written when every exported sample is labeled.
    """
    from liteship.fleet.samples_client import parse_since

    if not output.endswith(".npz"):
        from liteship.errors import UsageError

        raise UsageError(f"-o {output!r}: the export is a .npz file.", hint="Name it e.g. field.npz.")
    out = _client(ctx).export(
        model_id,
        output,
        since=parse_since(since) if since else None,
        version=version,
        labeled_only=labeled_only,
    )
    if as_json:
        emit_json(out)
        return
    console.print(
        f"wrote {escape(out['output'])}: {out['samples']} samples {tuple(out['shape'])} of "
        f"{escape(model_id)} ({', '.join(out['versions'])}; {', '.join(out['triggers'])}), {out['labeled']} labeled.",
        soft_wrap=True,
    )
    if out["y"]:
        console.print(
            "x and y: use it as `calibration:` or `validation:` data in liteship.yaml.", soft_wrap=True
        )
    else:
        console.print(
            "x only (not every sample is labeled): use it as `calibration:` data; label samples "
            "(`liteship fleet samples label`, the dashboard) and export with --labeled-only for validation.",
            soft_wrap=True,
        )


@samples.command("purge")
@click.argument("model_id")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    help="Delete samples received before this: an age (30d, 12h) or a date (2026-12-01, UTC).",
)
@json_option
@connection_options
@click.pass_context
def samples_purge(ctx: click.Context, model_id: str, older_than: str, as_json: bool) -> None:
    """Delete MODEL_ID's samples received before --older-than, files included (server-side retention)."""
    from liteship.fleet.samples_client import parse_since

    out = _client(ctx).purge(model_id, before=parse_since(older_than))
    if as_json:
        emit_json(out)
        return
    console.print(f"deleted {out['deleted']} samples of {escape(model_id)}.")
