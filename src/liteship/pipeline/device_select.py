"""Selection on device figures: the pipeline's gates, with the latency measured by the fleet's devices.

:func:`select_on_devices` takes a pipeline report (``report.json``) and a fleet bench job
(``liteship fleet bench``) and picks, among the variants that pass the gates, the one with the lowest
*median device p50* (or, with ``per_group``, one per hardware group). A variant that could not run on
any device is out. When no device answered, selection falls back to the workstation figures and says
so (``fallback=True``). :func:`select_report` waits for the job (timeout, progress), selects, and
writes the result into ``report.json`` (key ``device_selection``) and ``report.html`` (a section with
workstation and device latency side by side).

>>> sel = select_report("out/report.json", job_id="job-…", client=BenchClient(...), timeout_s=600)  # doctest: +SKIP
>>> sel.chosen, sel.fallback                                                                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from liteship._fs import write_atomic
from liteship.errors import FleetError, PipelineError, UsageError
from liteship.pipeline.gates import Candidate, Gates
from liteship.pipeline.select import select_variant
from liteship.progress import track_until
from liteship.report.device_html import HTML_BEGIN, HTML_END, render_section
from liteship.types import ReportMixin

OPEN = ("queued", "running")


@dataclass(frozen=True)
class DeviceLatency(ReportMixin):
    """One variant: its workstation p50 and what the devices measured."""

    recipe: str
    workstation_p50_ms: float | None
    device_p50_ms: float | None  # median over the devices that ran it
    devices: dict[str, float] = field(default_factory=dict)  # device id → p50 ms
    errors: dict[str, str] = field(default_factory=dict)  # device id → why it did not run


@dataclass(frozen=True)
class GroupChoice(ReportMixin):
    """The variant chosen for one hardware group (``liteship.fleet.jobs.profile_group``)."""

    group: str
    devices: list[str]
    chosen: str | None
    device_p50_ms: dict[str, float]  # variant → median p50 in this group


@dataclass(frozen=True)
class DeviceSelection(ReportMixin):
    """Selection on device latency (or, flagged, the workstation's when no device answered)."""

    job_id: str
    chosen: str | None
    workstation_chosen: str | None
    basis: str  # "device" | "workstation (fallback)"
    fallback: bool
    message: str
    variants: list[DeviceLatency]
    groups: list[GroupChoice] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # device id → its state when selection ran
    failures: dict[str, list[str]] = field(default_factory=dict)  # variant → why it cannot be chosen


def _names(v: dict[str, Any]) -> set[str]:
    """The names a report variant may carry in a job: its recipe, ``recipe.tflite``, its file name."""
    names = {v["recipe"], f"{v['recipe']}.tflite"}
    if v.get("path"):
        names |= {Path(v["path"]).name, Path(v["path"]).stem}
    return names


def match_variant(report_variants: list[dict[str, Any]], job_variant: str) -> str | None:
    for v in report_variants:
        if job_variant in _names(v):
            return v["recipe"]
    return None


def _figures(report: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, DeviceLatency]:
    variants = [v for v in report.get("variants", []) if v.get("ok")]
    per: dict[str, tuple[dict[str, float], dict[str, str]]] = {v["recipe"]: ({}, {}) for v in variants}
    for t in tasks:
        if t["state"] != "done":
            continue
        for r in t.get("results") or []:
            recipe = match_variant(variants, r["name"])
            if recipe is None:
                continue
            if r.get("ok") and r.get("p50_ms") is not None:
                per[recipe][0][t["device_id"]] = float(r["p50_ms"])
            else:
                per[recipe][1][t["device_id"]] = str(r.get("error") or "failed")
    return {
        v["recipe"]: DeviceLatency(
            recipe=v["recipe"],
            workstation_p50_ms=v.get("p50_ms"),
            device_p50_ms=statistics.median(per[v["recipe"]][0].values()) if per[v["recipe"]][0] else None,
            devices=per[v["recipe"]][0],
            errors=per[v["recipe"]][1],
        )
        for v in variants
    }


def select_on_p50(
    report: dict[str, Any], p50: dict[str, float | None], unavailable: dict[str, str]
) -> tuple[str | None, dict[str, list[str]]]:
    """The pipeline's own gates and objective, with ``p50`` as each variant's latency."""
    gates = Gates.from_dict(report.get("gates") or {})
    candidates = []
    failures: dict[str, list[str]] = {}
    for v in report.get("variants", []):
        if not v.get("ok"):
            continue
        if v["recipe"] in unavailable:
            failures[v["recipe"]] = [unavailable[v["recipe"]]]
            continue
        candidates.append(
            Candidate(
                recipe=v["recipe"],
                size_bytes=int(v.get("size_bytes") or 0),
                p50_ms=p50.get(v["recipe"]),
                accuracy_drop=v.get("accuracy_drop"),
                agreement=v.get("agreement_top1"),
                accuracy=v.get("accuracy"),
                sqnr_db=v.get("sqnr_db"),
                validation_passed=v.get("validation_passed") is not False,
            )
        )
    objective: Literal["latency", "size"] = "size" if report.get("objective") == "size" else "latency"
    sel = select_variant(candidates, objective=objective, gates=gates)
    failures.update(sel.failures_by_recipe)
    return sel.chosen, failures


def select_on_devices(
    report: dict[str, Any], job: dict[str, Any], *, per_group: bool = False
) -> DeviceSelection:
    """Select on the devices' median p50 (see the module docstring).

    Args:
        report: A pipeline ``report.json`` (as a dict).
        job: The bench job (``GET /api/v1/bench/jobs/{id}``), with its tasks.
        per_group: Also choose one variant per hardware group. Defaults to ``False``.

    Returns:
        A :class:`DeviceSelection`; ``fallback`` is True when no device answered.
    """
    from liteship.fleet.jobs import profile_group  # pure function; the server is not needed

    tasks = job.get("tasks", [])
    answered = [t["device_id"] for t in tasks if t["state"] == "done"]
    missing = {
        t["device_id"]: f"{t['state']}: {t.get('error') or 'no answer'}"
        for t in tasks
        if t["state"] != "done"
    }
    figures = _figures(report, tasks)
    ws_chosen = report.get("chosen")
    if not any(f.device_p50_ms is not None for f in figures.values()):
        states = ", ".join(f"{d} ({s.split(':')[0]})" for d, s in missing.items()) or "none"
        message = (
            f"no device returned figures for job {job.get('id')} (devices: {states}); selection falls back "
            f"to the workstation figures: {ws_chosen or 'nothing'} (flagged as workstation-only)."
        )
        return DeviceSelection(
            job_id=str(job.get("id")),
            chosen=ws_chosen,
            workstation_chosen=ws_chosen,
            basis="workstation (fallback)",
            fallback=True,
            message=message,
            variants=list(figures.values()),
            answered=answered,
            missing=missing,
        )
    unavailable = {
        name: (
            "could not run on any device: " + "; ".join(f"{d}: {e}" for d, e in f.errors.items())
            if f.errors
            else "not benchmarked on the devices (not in the job)"
        )
        for name, f in figures.items()
        if f.device_p50_ms is None
    }
    chosen, failures = select_on_p50(report, {n: f.device_p50_ms for n, f in figures.items()}, unavailable)
    groups = []
    if per_group:
        by_group: dict[str, list[dict[str, Any]]] = {}
        for t in tasks:
            if t["state"] == "done":
                by_group.setdefault(profile_group(t.get("profile") or {}), []).append(t)
        for group, members in sorted(by_group.items()):
            g = _figures(report, members)
            p50 = {n: f.device_p50_ms for n, f in g.items()}
            g_unavailable = {n: "did not run in this group" for n, v in p50.items() if v is None}
            g_chosen, _ = select_on_p50(report, p50, g_unavailable)
            groups.append(
                GroupChoice(
                    group=group,
                    devices=[t["device_id"] for t in members],
                    chosen=g_chosen,
                    device_p50_ms={n: v for n, v in p50.items() if v is not None},
                )
            )
    message = f"selected {chosen or 'nothing'} on the median device p50 of {len(answered)} device(s)"
    if chosen != ws_chosen:
        message += f" (the workstation figures chose {ws_chosen or 'nothing'})"
    if missing:
        message += (
            f"; no figures from {', '.join(missing)} ("
            + "; ".join(f"{d}: {s}" for d, s in missing.items())
            + ")"
        )
    return DeviceSelection(
        job_id=str(job.get("id")),
        chosen=chosen,
        workstation_chosen=ws_chosen,
        basis="device",
        fallback=False,
        message=message + ".",
        variants=list(figures.values()),
        groups=groups,
        answered=answered,
        missing=missing,
        failures=failures,
    )


def read_report(path: str | Path) -> dict[str, Any]:
    """A pipeline ``report.json``; PipelineError when it is missing or unreadable (exit 1, like every
    missing path), UsageError when it is not one."""
    try:
        report = json.loads(Path(path).read_text())
    except OSError as e:
        raise PipelineError(
            f"cannot read the pipeline report {str(path)!r}: {e.strerror}.",
            hint="Give out/report.json of `liteship pipeline run`.",
        ) from e
    except ValueError as e:
        raise UsageError(
            f"{str(path)!r} is not JSON ({e}).", hint="Give report.json of `liteship pipeline run`."
        ) from e
    if not isinstance(report, dict) or not isinstance(report.get("variants"), list):
        raise UsageError(
            f"{str(path)!r} is not a pipeline report (no 'variants').",
            hint="Give report.json of `liteship pipeline run`.",
        )
    return report


def variant_files(report: dict[str, Any], report_path: str | Path) -> tuple[list[Path], list[str]]:
    """The ``.tflite`` files of the report's converted variants and their job names (``<recipe>.tflite``)."""
    base = Path(report_path).parent
    paths, names = [], []
    for v in report["variants"]:
        if not v.get("ok") or not v.get("path"):
            continue
        p = Path(v["path"])
        p = p if p.is_absolute() or p.exists() else base / p.name
        if p.is_file():
            paths.append(p)
            names.append(job_name(v["recipe"]))
    if not paths:
        raise PipelineError(
            f"no variant file of {str(report_path)!r} exists any more.", hint="Run the pipeline again."
        )
    return paths, names


def job_name(recipe: str) -> str:
    """The name a report variant gets in a bench job: ``<recipe>.tflite``."""
    return re.sub(r"[^A-Za-z0-9._+-]", "-", recipe) + ".tflite"


def wait_and_select(
    client: Any,
    job_id: str,
    report: dict[str, Any],
    *,
    timeout_s: float,
    per_group: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> DeviceSelection:
    """Wait for a job (at most ``timeout_s``), then select on its figures; names the devices still silent."""

    def progress(job: dict[str, Any]) -> None:
        if on_progress is not None:
            on_progress(sum(t["state"] not in OPEN for t in job["tasks"]), len(job["tasks"]))

    job = client.wait(job_id, timeout_s=timeout_s, on_progress=progress)
    selection = select_on_devices(report, job, per_group=per_group)
    still = [d for d, s in selection.missing.items() if s.split(":")[0] in OPEN]
    if still:
        selection = _with_message(
            selection, f"timed out after {timeout_s:g} s waiting for {', '.join(still)}; "
        )
    return selection


def select_report(
    report_path: str | Path,
    *,
    client: Any,
    job_id: str | None = None,
    devices: list[str] | None = None,
    group: str | None = None,
    profile: dict[str, str] | None = None,
    timeout_s: float = 600.0,
    per_group: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> DeviceSelection:
    """Wait for a bench job (queued here from the report's variants when no ``job_id`` is given), select
    on its figures and write the result into ``report.json`` and ``report.html`` next to it.

    Args:
        report_path: ``report.json`` of a pipeline run.
        client: A :class:`liteship.fleet.jobs_client.BenchClient`.
        job_id: An existing job. Defaults to queueing one on ``devices`` / ``group`` / ``profile``.
        timeout_s: Longest wait for the devices; those still silent then are reported as missing.
        per_group: Also choose one variant per hardware group.
        on_progress: ``(answered, total)`` while waiting.

    Raises:
        UsageError: Neither a job nor devices, or an unreadable report.
    """
    report = read_report(report_path)
    if job_id is None:
        if not (devices or group or profile):
            raise UsageError("give a bench job id, or devices / a group / a profile to queue one on.")
        paths, names = variant_files(report, report_path)
        bench = report.get("bench") or {}
        job_id = client.queue(
            paths, names=names, devices=devices, group=group, profile=profile, runs=int(bench.get("runs", 50))
        )["id"]

    selection = wait_and_select(
        client, job_id, report, timeout_s=timeout_s, per_group=per_group, on_progress=on_progress
    )
    write_selection(report_path, report, selection)
    return selection


def select_in_pipeline(
    report: dict[str, Any], bench: Any, log: Callable[[str], None], *, per_group: bool = False
) -> DeviceSelection:
    """The pipeline's device stage (``bench.devices`` in liteship.yaml): queue the converted variants on
    those devices (server and admin token from $LITESHIP_SERVER / $LITESHIP_TOKEN), wait up to
    ``bench.device_timeout_s``, select (with ``per_group``, also one variant per hardware group). An
    unreachable fleet falls back to the workstation figures."""
    from liteship.fleet.jobs_client import BenchClient

    ran = [v for v in report["variants"] if v.get("ok") and v.get("path")]
    try:
        client = BenchClient()
        job = client.queue(
            [Path(v["path"]) for v in ran],
            names=[job_name(v["recipe"]) for v in ran],
            devices=list(bench.devices),
            runs=bench.runs,
            warmup=bench.warmup,
            min_seconds=bench.min_seconds,
        )
        log(
            f"device bench: job {job['id']} on {len(job['tasks'])} device(s); "
            f"waiting up to {bench.device_timeout_s:g} s"
        )
        with track_until("devices answered") as update:
            sel = wait_and_select(
                client,
                job["id"],
                report,
                timeout_s=bench.device_timeout_s,
                per_group=per_group,
                on_progress=update,
            )
    except FleetError as e:
        chosen = report.get("chosen")
        sel = DeviceSelection(
            job_id="",
            chosen=chosen,
            workstation_chosen=chosen,
            basis="workstation (fallback)",
            fallback=True,
            message=f"the device bench could not run ({e}); selection falls back to the workstation "
            f"figures: {chosen or 'nothing'} (flagged as workstation-only).",
            variants=list(_figures(report, []).values()),
        )
    log(f"[bold {'yellow' if sel.fallback else 'green'}]device bench[/] {sel.message}")
    return sel


def _with_message(sel: DeviceSelection, prefix: str) -> DeviceSelection:
    from dataclasses import replace

    return replace(sel, message=prefix + sel.message)


def write_selection(report_path: str | Path, report: dict[str, Any], selection: DeviceSelection) -> None:
    """Add ``device_selection`` to report.json and its section to report.html (replacing an older one)."""
    path = Path(report_path)
    report = {**report, "device_selection": selection.to_dict()}
    write_atomic(path, json.dumps(report, indent=2).encode())
    html_path = path.with_name("report.html")
    if html_path.is_file():
        page = html_path.read_text(encoding="utf-8")
        page = re.sub(re.escape(HTML_BEGIN) + r".*?" + re.escape(HTML_END), "", page, flags=re.S)
        section = render_section(selection)
        page = page.replace("</body>", section + "</body>") if "</body>" in page else page + section
        write_atomic(html_path, page.encode())


__all__ = [
    "DeviceLatency",
    "DeviceSelection",
    "GroupChoice",
    "read_report",
    "render_section",
    "select_in_pipeline",
    "select_on_devices",
    "select_report",
    "variant_files",
    "write_selection",
]
