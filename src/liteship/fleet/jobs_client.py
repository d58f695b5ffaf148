"""The admin client's bench-job calls (``liteship fleet bench``), on :class:`liteship.fleet.client.FleetClient`.

>>> c = BenchClient("http://127.0.0.1:8700", token="…")                       # doctest: +SKIP
>>> job = c.queue(["a.tflite", "b.tflite"], devices=["dev-1"])                # doctest: +SKIP
>>> c.wait(job["id"], timeout_s=600)["tasks"][0]["results"]                   # doctest: +SKIP
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from liteship.errors import FleetError, UsageError
from liteship.fleet.client import FleetClient
from liteship.fleet.jobs_models import VARIANT_NAME_PATTERN

OPEN = ("queued", "running")


def variant_name(path: str | Path) -> str:
    """The name a variant is known by on devices: its file name, made safe for a TUF target path."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "-", Path(path).name)[:100].lstrip("._+-") or "variant.tflite"
    if not re.match(VARIANT_NAME_PATTERN, name):
        raise UsageError(f"cannot make a target name of {str(path)!r}.", hint="Rename the file.")
    return name


class BenchClient(FleetClient):
    """Upload variants, queue a bench job, read and wait for its results."""

    def upload_variant(self, path: str | Path) -> dict[str, Any]:
        with open(path, "rb") as f:
            return self._call("POST", "/api/v1/bench/variants", content=f)

    def queue(
        self,
        variants: Sequence[str | Path],
        *,
        names: Sequence[str] | None = None,
        devices: Sequence[str] | None = None,
        group: str | None = None,
        profile: dict[str, str] | None = None,
        runs: int = 50,
        warmup: int = 5,
        min_seconds: float = 1.0,
        threads: int | None = None,
        targets_key: str | Path | None = None,
    ) -> dict[str, Any]:
        """Upload ``variants`` and queue a job on the devices chosen by ``devices``, ``group`` or ``profile``.

        Args:
            variants: ``.tflite`` files.
            names: What to call each variant on the devices. Defaults to the file names.
            devices / group / profile: Exactly one: device ids, a hardware group
                (:func:`liteship.fleet.jobs.profile_group`), or ``KEY: VALUE`` pairs of the device profile.
            runs / warmup / min_seconds / threads: As for ``liteship bench``; ``threads`` defaults to the
                agent's own thread count.
            targets_key: The offline TUF targets key, when the server does not hold it.

        Returns:
            The job (``id``, ``variants``, ``tasks``, ``tuf``).
        """
        missing = [str(p) for p in variants if not Path(p).is_file()]
        if missing:
            raise UsageError(f"variant file {missing[0]!r} does not exist.", hint="Give .tflite files.")
        names = list(names) if names is not None else [variant_name(p) for p in variants]
        refs = [
            {"name": n, "sha256": self.upload_variant(p)["sha256"]}
            for n, p in zip(names, variants, strict=True)
        ]
        body: dict[str, Any] = {"variants": refs, "runs": runs, "warmup": warmup, "min_seconds": min_seconds}
        body.update({k: v for k, v in (("devices", devices), ("group", group), ("profile", profile)) if v})
        if threads is not None:
            body["threads"] = threads
        job = self._call("POST", "/api/v1/bench/jobs", json=body)
        if job.get("tuf") == "pending-offline-signature" and targets_key is not None:
            self.sign_targets(targets_key)
            job["tuf"] = "signed"
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/bench/jobs/{job_id}")

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/bench/jobs", params={"limit": limit})

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float,
        every_s: float = 1.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """The job once no task is queued or running, or when ``timeout_s`` has passed (tasks still open
        are then left as they are: the caller decides what a missing device means)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if all(t["state"] not in OPEN for t in job["tasks"]) or time.monotonic() >= deadline:
                return job
            time.sleep(min(every_s, max(0.0, deadline - time.monotonic())))


def parse_profile(pairs: Sequence[str]) -> dict[str, str]:
    """``["machine=aarch64", "isa=dotprod"]`` → a dict (``KEY=VALUE`` each)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(
                f"profile filter {pair!r} is not KEY=VALUE.", hint="For example machine=aarch64."
            )
        out[key.strip()] = value.strip()
    return out


__all__ = ["BenchClient", "parse_profile", "variant_name", "FleetError"]
