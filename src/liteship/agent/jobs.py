"""Bench jobs on the device: verify each variant through TUF, benchmark it beside the live model, report.

A job arrives in the check-in's assignment (``jobs``: see ``liteship.fleet.jobs``). For each job:

1. the journal ``<state>/bench/job.json`` records that the job started (and the server hears it);
2. every variant is fetched as a TUF target with the device's pinned root (the same
   ``Updater.tuf()`` chain as a model: signatures, versions, expiry, length and sha256); one variant
   that does not verify refuses the whole job, which then never runs;
3. each variant is timed by :func:`liteship.bench.benchmark` (the figures of ``liteship bench``: init,
   first inference, p50/p95/p99, RSS) with its own LiteRT runner and thread count; a variant that
   cannot load (unknown ops, too big) gets an error of its own and the others still run;
4. the report goes to the server (kept in the journal until it is acknowledged), the files are
   deleted and the job is remembered as done.

**The live model.** The job never touches the model slots (``current``/``previous``). Inference and
bench runs share one lock, :class:`LiveGate`: a bench step (one model load, or one run) happens only
*between two frames*, and after each run of ``t`` ms the bench sleeps ``t·(1-d)/d`` so it uses at most
the duty cycle ``d`` of the time. A frame waits at most one bench step.

**A kill or a reboot mid-job.** At the next start :meth:`BenchJobs.recover` finds the journal of an
unfinished job, deletes its files and reports the job *failed* ("interrupted"). It is not resumed:
a variant that crashes LiteRT would otherwise crash the agent again at every start.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from liteship.agent.fsutil import atomic_write_json, contained, read_json
from liteship.agent.jobs_profile import run_profile
from liteship.agent.jobs_validate import load_samples, run_validation
from liteship.agent.pacing import JobStopped, LiveGate, Pacer
from liteship.agent.sinks import event
from liteship.errors import JobRefused, LiteshipError, ServerError, UpdateRefused

DEFAULT_DUTY_CYCLE = 0.5
MAX_VARIANT_BYTES = 256 << 20
MAX_RUNS = 10_000
DONE_KEPT = 100  # job ids remembered as done (a job offered again after it finished is not rerun)
TARGET_PREFIX = "bench-jobs/"  # the TUF targets of device jobs (liteship.fleet.jobs); never a model's
KINDS = ("bench", "validate", "profile")
MAX_DATA_BYTES = 64 << 20  # a validate job's samples
# a job id is a name of this syntax (the server's are "job-<16 hex>"), never a path
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
TEST_DELAY_ENV = "LITESHIP_TEST_BENCH_DELAY_MS"  # tests only: "NAME=MS,…" adds MS to each run of NAME


def valid_job_id(value: object) -> bool:
    """True for a job id of the fixed syntax (:data:`JOB_ID`: no dot, no slash): the only ids a job may have."""
    return isinstance(value, str) and JOB_ID.fullmatch(value) is not None


def device_profile() -> dict[str, Any]:
    """The device profile sent with a report: the check-in's (:func:`liteship.agent.profile.device_profile`)."""
    from liteship.agent.profile import device_profile as profile

    return dict(profile())


class BenchJobs:
    """Runs the bench jobs a device is offered (on the updater thread, after each check-in).

    Args:
        store: The agent's store (only its folder is used: jobs never touch the model slots).
        updater: The agent's updater (its TUF chain and its fleet client).
        gate: Shared with the inference loop.
        duty_cycle: Largest share of time the bench may take, 0 < d ≤ 1. Defaults to 0.5.
        num_threads: LiteRT threads when the job does not set them. Defaults to the runtime's default.
        accelerator: The agent's ``--accelerator``: validate jobs run on it (with the live loop's CPU
            fallback). Defaults to the Interpreter on the CPU.
    """

    def __init__(
        self,
        store: Any,
        updater: Any,
        *,
        gate: LiveGate,
        duty_cycle: float = DEFAULT_DUTY_CYCLE,
        num_threads: int | None = None,
        accelerator: str | None = None,
    ) -> None:
        if not 0.0 < duty_cycle <= 1.0:
            raise LiteshipError(
                f"bench duty cycle must be in (0, 1], got {duty_cycle}.", hint="For example 0.5."
            )
        self.store, self.updater, self.gate = store, updater, gate
        self.duty_cycle, self.num_threads = duty_cycle, num_threads
        self.accelerator = accelerator  # validate jobs run where the live model runs (--accelerator)
        self.folder = Path(store.root) / "bench"
        self.journal = self.folder / "job.json"
        self.stopping = threading.Event()  # set at shutdown: a running job stops at its next step

    # ---- journal ------------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any] | None:
        data = read_json(self.journal, None)
        return data if isinstance(data, dict) else None

    def _write(self, data: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.journal, data)

    def _done(self) -> list[str]:
        data = read_json(self.folder / "done.json", [])
        return [str(x) for x in data] if isinstance(data, list) else []

    def _finish(self, job_id: str) -> None:
        """The server has the report: remember the job as done, then drop the journal (a crash in
        between only resends a report the server already keeps)."""
        atomic_write_json(self.folder / "done.json", [*self._done(), job_id][-DONE_KEPT:])
        self.journal.unlink(missing_ok=True)

    def _files(self, job_id: str) -> Path:
        """The job's scratch folder, checked to lie inside ``<state>/bench/files`` (never a slot)."""
        if not valid_job_id(job_id):
            raise JobRefused(f"job id {job_id[:100]!r} is not a name of the form {JOB_ID.pattern}.")
        try:
            return contained(self.folder / "files", job_id)
        except ValueError as e:
            raise JobRefused(f"job id {job_id[:100]!r} does not name a folder of its own: {e}") from e

    def _clean(self, job_id: str | None = None) -> None:
        shutil.rmtree(self._files(job_id) if job_id else self.folder / "files", ignore_errors=True)

    def recover(self) -> str | None:
        """At start-up: an unfinished job was interrupted (kill, reboot): delete its files and queue a
        *failed* report. Returns the job id, or None."""
        journal = self._read()
        self._clean()
        if journal is not None and journal.get("state") not in ("running", "report"):
            self.journal.unlink(missing_ok=True)  # unreadable or unknown: nothing to report
        if journal is None or journal.get("state") != "running":
            return None
        job_id = str(journal.get("job_id"))
        if not valid_job_id(job_id):  # not ours: written by something else, nothing to report to
            self.journal.unlink(missing_ok=True)
            return None
        report = {
            "state": "failed",
            "error": "interrupted: the agent stopped (killed or rebooted) during the "
            "job; it is not resumed, so a variant that crashes the runtime cannot crash it again. "
            "Queue the job again to retry.",
            "results": [],
            "profile": device_profile(),
            "mode": self.mode(),
        }
        self._write({"job_id": job_id, "state": "report", "report": report})
        event("bench job interrupted", 30, job_id=job_id)
        return job_id

    # ---- the check-in hook --------------------------------------------------------------------------

    def after_check_in(self) -> list[str]:
        """Send a report still owed, then run the jobs of the last assignment. Returns the jobs run."""
        self._send_owed()
        last = self.store.state().get("last_checkin") or {}
        offers = (last.get("assignment") or {}).get("jobs") if last.get("ok") else None
        ran: list[str] = []
        for offer in offers if isinstance(offers, list) else []:
            job_id = offer.get("job_id") if isinstance(offer, dict) else None
            if not isinstance(job_id, str) or not valid_job_id(job_id):
                event("bench job refused", 40, job_id=str(job_id)[:100], error="the job id is not a name")
                continue
            if job_id in self._done() or self._read() is not None:
                continue
            self.run(offer)
            ran.append(job_id)
        return ran

    def _send_owed(self) -> None:
        journal = self._read()
        owed = journal is not None and journal.get("state") == "report"
        if owed and not valid_job_id(journal.get("job_id")):  # type: ignore[union-attr]
            self.journal.unlink(missing_ok=True)
            return
        if owed and self._post(str(journal["job_id"]), journal["report"]):  # type: ignore[index]
            self._finish(str(journal["job_id"]))  # type: ignore[index]

    def _post(self, job_id: str, report: dict[str, Any]) -> bool:

        client = self.updater.client
        try:
            client.request("POST", f"/api/v1/devices/{client.device_id}/bench/{job_id}", json=report)
        except ServerError as e:
            event("bench report deferred", 30, job_id=job_id, error=str(e))
            return e.status is not None and 400 <= e.status < 500 and e.status not in (401, 408, 429)
        return True

    def mode(self) -> dict[str, Any]:
        return {
            "mode": "between-frames",
            "duty_cycle": self.duty_cycle,
            "frame_waits_at_most": "one bench step",
        }

    # ---- one job ------------------------------------------------------------------------------------

    def run(self, offer: dict[str, Any]) -> dict[str, Any]:
        """Verify and benchmark one offered job; report and clean up. Returns the report."""
        job_id = str(offer["job_id"])
        if not valid_job_id(job_id):
            raise JobRefused(f"job id {job_id[:100]!r} is not a name of the form {JOB_ID.pattern}.")
        self._write({"job_id": job_id, "state": "running", "at": time.time()})
        self._post(job_id, {"state": "running"})
        event("bench job started", job_id=job_id, variants=len(offer.get("variants") or []))
        report: dict[str, Any]
        try:
            try:
                variants, settings = _checked(offer)
                data = settings.get("data")
                paths = self._fetch(job_id, [*variants, *([data] if data else [])])
                if data:  # unusable samples refuse the whole job, like a target that does not verify
                    settings["samples"] = load_samples(paths[data["name"]])
            except JobRefused as e:
                report = {"state": "refused", "error": str(e)[:1000], "results": []}
                event("bench job refused", 40, job_id=job_id, error=str(e))
            else:
                try:
                    report = {"state": "done", "results": self._results(job_id, variants, paths, settings)}
                except JobStopped:
                    raise
                except Exception as e:  # noqa: BLE001 - reported, never a journal left "running"
                    report = {"state": "failed", "error": f"{type(e).__name__}: {e}"[:1000], "results": []}
        except JobStopped:  # the journal stays "running": the next start reports it interrupted
            event("device job stopped with the agent", 30, job_id=job_id)
            return {"state": "stopped", "results": []}
        finally:
            self._clean(job_id)
        report.update(profile=device_profile(), mode=self.mode())
        self._write({"job_id": job_id, "state": "report", "report": report})
        if self._post(job_id, report):
            self._finish(job_id)
        event("bench job finished", job_id=job_id, state=report["state"])
        return report

    def _results(
        self, job_id: str, variants: list[dict[str, Any]], paths: dict[str, Path], settings: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Each variant's result row, by the job's kind (bench, validate, profile)."""
        kind = settings.get("kind", "bench")
        if kind == "bench":
            return [self._bench(v, paths.get(v["name"]), settings) for v in variants]
        threads = settings["threads"] or self.num_threads
        pacer = Pacer(self.gate, self.duty_cycle, self.stopping)
        rows = []
        if kind == "profile":
            for v in variants:
                path = paths.get(v["name"])
                rows.append(
                    run_profile(v["name"], path, pacer=pacer, num_threads=threads, runs=settings["runs"])
                    if path is not None
                    else _too_big(v)
                )
            return rows
        x = settings["samples"]
        for v in variants:
            path = paths.get(v["name"])
            if path is None:
                rows.append(_too_big(v))
                continue
            row, body = run_validation(
                v["name"], path, x, pacer=pacer, accelerator=self.accelerator, num_threads=threads
            )
            if body is not None and not self._post_outputs(job_id, body):
                row = {
                    **row,
                    "ok": False,
                    "error": "the server did not take the outputs (see the agent log).",
                }
            rows.append(row)
        return rows

    def _post_outputs(self, job_id: str, body: dict[str, Any]) -> bool:

        client = self.updater.client
        try:
            client.request("POST", f"/api/v1/devices/{client.device_id}/bench/{job_id}/outputs", json=body)
        except ServerError as e:
            event("validation outputs refused", 40, job_id=job_id, variant=body["name"], error=str(e))
            return False
        return True

    def _fetch(self, job_id: str, variants: list[dict[str, Any]]) -> dict[str, Path]:
        """Every variant through TUF into the job's folder. Raises JobRefused when one does not verify."""
        from tuf.api.exceptions import DownloadError, RepositoryError

        folder = self._files(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            tuf = self.updater.tuf()
            with getattr(self.updater, "tuf_lock", None) or contextlib.nullcontext():
                tuf.refresh()
        except UpdateRefused as e:
            raise JobRefused(f"cannot verify the job: {e}") from e
        except RepositoryError as e:
            raise JobRefused(f"TUF metadata does not verify ({type(e).__name__}: {e}).") from e
        except DownloadError as e:
            raise JobRefused(f"cannot download TUF metadata: {e}") from e
        paths = {}
        for v in variants:
            info = tuf.get_targetinfo(v["target_path"])
            if info is None:
                raise JobRefused(
                    f"variant {v['name']!r} is not a signed TUF target ({v['target_path']}): unsigned job."
                )
            if info.hashes.get("sha256") != v["sha256"] or info.length != v["size"]:
                raise JobRefused(
                    f"variant {v['name']!r}: the job's sha256/size differ from its signed TUF target."
                )
            if info.length > MAX_VARIANT_BYTES:
                continue  # reported per variant by _bench: too big to load here
            dest = folder / f"{v['sha256']}.tflite"
            try:
                tuf.download_target(info, str(dest))
            except RepositoryError as e:  # LengthOrHashMismatchError: the bytes are not the signed ones
                raise JobRefused(
                    f"variant {v['name']!r} does not match its TUF target ({e}): tampered."
                ) from e
            except DownloadError as e:
                raise JobRefused(f"cannot download variant {v['name']!r}: {e}") from e
            paths[v["name"]] = dest
        return paths

    def _bench(self, variant: dict[str, Any], path: Path | None, settings: dict[str, Any]) -> dict[str, Any]:
        """The figures of one variant, or its error (the others still run)."""
        from liteship.bench import benchmark

        name = variant["name"]
        if path is None:
            return _too_big(variant)
        threads = settings["threads"] or self.num_threads
        try:
            t0 = time.perf_counter()
            source: Any = _test_runner(name, path, threads) or path
            built_ms = (time.perf_counter() - t0) * 1000.0 if source is not path else None
            with Pacer(self.gate, self.duty_cycle, self.stopping) as pacer:
                report = benchmark(
                    [source],
                    threads=(threads,),
                    runs=settings["runs"],
                    warmup=settings["warmup"],
                    min_seconds=settings["min_seconds"],
                    progress=False,
                    pace=pacer,
                )
        except LiteshipError as e:
            return {"name": name, "ok": False, "error": str(e)[:1000]}
        except JobStopped:
            raise
        except Exception as e:  # noqa: BLE001 - a bad variant must never stop the agent
            return {"name": name, "ok": False, "error": f"{type(e).__name__}: {e}"[:1000]}
        entry = report.entries[0]
        return {
            "name": name,
            "ok": True,
            "threads": entry.threads,
            "init_ms": entry.init_ms if entry.init_ms is not None else built_ms,
            "first_inference_ms": entry.first_inference_ms,
            "p50_ms": entry.latency.p50_ms,
            "p95_ms": entry.latency.p95_ms,
            "p99_ms": entry.latency.p99_ms,
            "mean_ms": entry.latency.mean_ms,
            "runs": entry.latency.count,
            "rss_delta_bytes": entry.rss_delta_bytes,
            "peak_rss_bytes": entry.peak_rss_bytes,
        }


def _too_big(variant: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": variant["name"],
        "ok": False,
        "error": f"{variant['size']} bytes is over this device's {MAX_VARIANT_BYTES >> 20} MiB limit for a "
        "job's variant.",
    }


def _target(v: Any) -> dict[str, Any]:
    """A target of the offer (a variant or a validate job's data), checked; raises JobRefused."""
    ok = isinstance(v, dict) and all(isinstance(v.get(k), str) for k in ("name", "target_path", "sha256"))
    if not ok or not isinstance(v.get("size"), int) or not 0 < v["size"] < 1 << 40:
        raise JobRefused(f"malformed target in the job: {str(v)[:200]}")
    if not re.fullmatch(r"[0-9a-f]{64}", v["sha256"]) or not v["target_path"].startswith(TARGET_PREFIX):
        raise JobRefused(f"{v['name'][:100]!r} is not a job target ({TARGET_PREFIX}<job>/<name>).")
    return dict(v)


def _checked(offer: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The offer's variants and settings, bounded (the server is trusted less than TUF)."""
    variants = offer.get("variants")
    if not isinstance(variants, list) or not 0 < len(variants) <= 16:
        raise JobRefused("the job lists no variants, or more than 16.")
    out = [_target(v) for v in variants]
    kind = offer.get("kind") or "bench"
    if kind not in KINDS:
        raise JobRefused(f"unknown job kind {str(kind)[:50]!r}; this agent runs {', '.join(KINDS)}.")
    data = offer.get("data")
    if kind == "validate":
        data = _target(data)
        if data["size"] > MAX_DATA_BYTES or any(v["name"] == data["name"] for v in out):
            raise JobRefused(
                f"the validation data {data['name'][:100]!r} is too big or named like a variant."
            )
    elif data is not None:
        raise JobRefused(f"a {kind} job carries no data.")

    def number(key: str, default: float, low: float, high: float) -> Any:
        value = offer.get(key, default)
        if value is None:
            return default
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            raise JobRefused(f"job setting {key}={value!r} is outside [{low}, {high}].")
        return value

    threads = offer.get("threads")
    settings: dict[str, Any] = {
        "runs": int(number("runs", 50, 1, MAX_RUNS)),
        "warmup": int(number("warmup", 5, 0, 1000)),
        "min_seconds": float(number("min_seconds", 1.0, 0.0, 60.0)),
        "threads": int(number("threads", 1, 1, 64)) if threads is not None else None,
    }
    if kind != "bench":  # a bench job's settings stay those of bench jobs before other kinds
        settings.update(kind=kind, data=data)
    return out, settings


def _test_runner(name: str, path: Path, threads: int | None) -> Any:
    """Tests only (``LITESHIP_TEST_BENCH_DELAY_MS="NAME=MS"``): a runner whose invoke is MS slower."""
    spec = os.environ.get(TEST_DELAY_ENV)
    if not spec:
        return None
    delays = dict(item.split("=", 1) for item in spec.split(",") if "=" in item)
    if name not in delays:
        return None
    from liteship.runtime import LiteRTRunner

    delay_s = float(delays[name]) / 1000.0

    class DelayedRunner(LiteRTRunner):
        def invoke(self) -> None:
            super().invoke()
            time.sleep(delay_s)

    print(f"liteship test hook: {name} is {delay_s * 1000:g} ms slower per run", file=sys.stderr)
    return DelayedRunner(str(path), num_threads=threads, raw=True)


__all__ = ["valid_job_id", "BenchJobs", "LiveGate", "Pacer", "JobRefused", "device_profile", "TEST_DELAY_ENV"]
