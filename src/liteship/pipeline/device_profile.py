"""Profile the packaged variant(s) on the fleet's devices (``bench.profile: true`` with ``bench.devices``):
a profile job (:mod:`liteship.agent.jobs_profile`: each op timed alone, load time, first inference, peak
RSS) of what the run ships, its figures kept in the report as :class:`DeviceProfile` and rendered in
report.html (per-op table and the slowest ops' chart, :func:`liteship.report.device_html.render_profile_section`).

>>> prof = profile_from_job(job, {"int8.tflite": "int8"})   # doctest: +SKIP
>>> prof.rows[0].ops[0]["op"], prof.rows[0].invoke_ms      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship.errors import LiteshipError
from liteship.pipeline.device_select import job_name
from liteship.progress import track_until
from liteship.types import ReportMixin

OPEN = ("queued", "running")
FIELDS = ("load_ms", "first_inference_ms", "invoke_ms", "ops_total_ms", "peak_rss_bytes", "delegated_nodes")


@dataclass(frozen=True)
class ProfileRow(ReportMixin):
    """One variant on one device: the whole model's figures and its ops (``index``, ``op``, ``ran_on``,
    ``ms``), slowest first; ``error`` when the device could not profile it."""

    device_id: str
    recipe: str
    ok: bool
    error: str | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    invoke_ms: float | None = None
    ops_total_ms: float | None = None
    peak_rss_bytes: int | None = None
    delegated_nodes: int | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DeviceProfile(ReportMixin):
    """A profile job of the shipped variant(s): one row per device and variant, and the devices that did
    not answer (``missing``: device id → its state). ``fallback`` when no job could run."""

    job_id: str
    message: str
    rows: list[ProfileRow] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    fallback: bool = False


def profile_from_job(job: dict[str, Any], recipes: dict[str, str]) -> DeviceProfile:
    """The :class:`DeviceProfile` of a profile ``job`` (``GET /api/v1/bench/jobs/{id}``); ``recipes``: the
    job's variant names → the pipeline's variant names."""
    rows, missing = [], {}
    for t in job.get("tasks", []):
        if t["state"] != "done":
            missing[t["device_id"]] = f"{t['state']}: {t.get('error') or 'no answer'}"
            continue
        for r in t.get("results") or []:
            recipe = recipes.get(str(r.get("name")), str(r.get("name")))
            if not r.get("ok"):
                rows.append(ProfileRow(t["device_id"], recipe, False, str(r.get("error") or "failed")))
                continue
            ops = sorted((dict(o) for o in r.get("ops") or []), key=lambda o: -float(o.get("ms") or 0.0))
            rows.append(
                ProfileRow(t["device_id"], recipe, True, None, **{k: r.get(k) for k in FIELDS}, ops=ops)
            )
    answered = len({r.device_id for r in rows})
    message = f"profiled {len({r.recipe for r in rows})} variant(s) on {answered} device(s)"
    if missing:
        message += "; no figures from " + "; ".join(f"{d} ({s})" for d, s in missing.items())
    return DeviceProfile(str(job.get("id")), message + ".", rows, missing)


def profile_in_pipeline(
    variants: dict[str, Path], devices: list[str], *, runs: int, timeout_s: float, log: Callable[[str], None]
) -> DeviceProfile:
    """Queue a profile job of ``variants`` (recipe → file) on ``devices``, wait up to ``timeout_s``; a
    fleet that cannot be reached gives a flagged, empty profile (the run goes on)."""
    from liteship.fleet.jobs_client import BenchClient

    names = {job_name(r): r for r in variants}
    try:
        client = BenchClient()
        job = client.queue(
            list(variants.values()), names=list(names), devices=devices, kind="profile", runs=runs, warmup=1
        )
        log(
            f"device profile: job {job['id']} on {len(job['tasks'])} device(s); waiting up to {timeout_s:g} s"
        )
        with track_until("devices profiled") as update:
            job = client.wait(
                job["id"],
                timeout_s=timeout_s,
                on_progress=lambda j: update(
                    sum(t["state"] not in OPEN for t in j["tasks"]), len(j["tasks"])
                ),
            )
        prof = profile_from_job(job, names)
    except LiteshipError as e:
        prof = DeviceProfile("", f"the device profile could not run ({e}).", fallback=True)
    log(f"[bold {'yellow' if prof.fallback or prof.missing else 'green'}]device profile[/] {prof.message}")
    return prof


__all__ = ["DeviceProfile", "ProfileRow", "profile_from_job", "profile_in_pipeline"]
