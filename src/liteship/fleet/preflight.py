"""Preflight: which devices of a model cannot load a release's ``.tflite``, before a rollout puts them on
the candidate arm (issue 23).

The evidence is the device jobs (:mod:`liteship.fleet.jobs`): any bench, validate or profile job whose
variant is byte for byte the release's model file (same sha256) has tried to load it on the device,
with the device's own LiteRT build, ISA and accelerator. A variant that could not load (a missing op,
a wrong ISA, a delegate that fails) is reported per device with the device's own error; a device no
such job reached is *unchecked* (``liteship fleet bench MODEL.tflite --runs 1 --device …`` checks it in
seconds). ``rollout start`` prints this list as a warning; it does not refuse: the agent's smoke test
and health window still protect a device that installs a model it cannot run (it reverts).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from liteship.errors import NotFound
from liteship.fleet.jobs import profile_group
from liteship.fleet.jobs_models import TASK_DONE, BenchJob, BenchTask
from liteship.fleet.models import Device, Release

MAX_JOBS = 500  # newest jobs looked at


def model_sha256(release: Release) -> str | None:
    """The sha256 of the release's ``.tflite`` (from its manifest), or None."""
    manifest = release.manifest or {}
    name = (manifest.get("model") or {}).get("file")
    entry = (manifest.get("files") or {}).get(name) if isinstance(name, str) else None
    sha = entry.get("sha256") if isinstance(entry, dict) else None
    return sha if isinstance(sha, str) else None


def preflight(session: Session, *, model_id: str, version: str) -> dict[str, Any]:
    """Per device of ``model_id``: ``loads``, ``cannot-load`` (with the device's error) or ``unchecked``.

    Raises:
        NotFound: No such release.
    """
    release = session.scalars(
        select(Release).where(Release.model_id == model_id, Release.version == version)
    ).first()
    if release is None:
        raise NotFound(
            f"no release {model_id} {version}.", hint="List releases with `liteship fleet releases`."
        )
    sha = model_sha256(release)
    devices = list(session.scalars(select(Device).where(Device.model_id == model_id).order_by(Device.id)))
    evidence: dict[str, dict[str, Any]] = {}
    if sha is not None:
        jobs = session.scalars(select(BenchJob).order_by(BenchJob.created_at.desc()).limit(MAX_JOBS))
        for job in jobs:  # newest first: a device's newest evidence wins
            names = {v["name"] for v in job.variants if v.get("sha256") == sha}
            if not names:
                continue
            tasks = session.scalars(
                select(BenchTask).where(BenchTask.job_id == job.id, BenchTask.state.in_(TASK_DONE))
            )
            for t in tasks:
                row = next((r for r in t.results or [] if r.get("name") in names), None)
                if row is None or t.device_id in evidence:
                    continue
                ok = bool(row.get("ok"))
                evidence[t.device_id] = {
                    "status": "loads" if ok else "cannot-load",
                    "error": None if ok else str(row.get("error") or "")[:300],
                    "job_id": job.id,
                    "checked_at": t.updated_at,
                }
    rows = []
    for d in devices:
        found = evidence.get(d.id, {"status": "unchecked", "error": None, "job_id": None, "checked_at": None})
        rows.append({"device_id": d.id, "group": profile_group(d.runtime or {}), **found})
    return {
        "model_id": model_id,
        "version": version,
        "model_sha256": sha,
        "devices": rows,
        "cannot_load": [r["device_id"] for r in rows if r["status"] == "cannot-load"],
        "unchecked": [r["device_id"] for r in rows if r["status"] == "unchecked"],
    }


__all__ = ["preflight", "model_sha256"]
