"""Gate and select on the devices' own validation figures (issue 23.2).

A validation job (``liteship fleet validate``, :mod:`liteship.fleet.jobs_validate`) of a pipeline's
variants, queued with the pipeline's own gates (``min_agreement``, ``max_accuracy_drop``, ``min_sqnr``
of ``liteship.yaml``), says per hardware group whether each variant passes them *on the devices*. Here
a variant that passes on the workstation but fails on a group is taken out of that group's choice,
which is then made by the pipeline's own selection (:func:`liteship.pipeline.device_select.select_on_p50`:
the same gates and objective, device p50 when a bench job gave one). The report says both side by
side: ``report.json`` → ``device_validation``.

    >>> job = queue_for_report(client, report, "out/report.json", "val.npz", group="aarch64+neon")  # doctest: +SKIP
    >>> gate = device_gate(report, client.wait(job["id"], timeout_s=600))                          # doctest: +SKIP
    >>> gate.groups[0].chosen, gate.groups[0].excluded                                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from liteship.errors import LiteshipError, PipelineError
from liteship.pipeline.device_select import job_name, match_variant, select_on_p50, variant_files
from liteship.progress import track_until
from liteship.types import ReportMixin

VALIDATION_GATES = ("min_agreement", "max_accuracy_drop", "min_sqnr", "min_accuracy")


@dataclass(frozen=True)
class GroupVerdict(ReportMixin):
    """One hardware group: each variant's workstation and device verdicts, and the group's choice.

    Attributes:
        group: The hardware group (``machine+isa…``).
        devices: Its devices in the job.
        workstation: recipe → passed the pipeline's gates on the workstation.
        device: recipe → passed the same gates on every device of the group (None: no figures).
        excluded: recipe → why it is not a candidate for this group.
        chosen: The group's variant, or None when none passes.
        figures: recipe → the group's worst device figures (``top1_min``, ``accuracy_min``,
            ``sqnr_db_min``, ``max_abs_error``, ``answered``), to show beside the workstation's.
    """

    group: str
    devices: list[str]
    workstation: dict[str, bool]
    device: dict[str, bool | None]
    excluded: dict[str, list[str]] = field(default_factory=dict)
    chosen: str | None = None
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


FIGURES = ("top1_min", "accuracy_min", "sqnr_db_min", "max_abs_error", "answered")


@dataclass(frozen=True)
class DeviceGate(ReportMixin):
    """The device validation of a pipeline report: ``groups`` and the job it came from.

    ``fallback`` is True when no validation job could run (the fleet unreachable, nothing to queue):
    then no group is gated and ``message`` says why.
    """

    job_id: str
    gates: dict[str, float]
    groups: list[GroupVerdict]
    message: str = ""
    fallback: bool = False

    @property
    def failed_groups(self) -> list[str]:
        return [g.group for g in self.groups if g.chosen is None]


def report_gates(report: dict[str, Any]) -> dict[str, float]:
    """The pipeline's validation gates, as a validate job takes them."""
    gates = report.get("gates") or {}
    return {k: float(gates[k]) for k in VALIDATION_GATES if gates.get(k) is not None}


def queue_for_report(
    client: Any, report: dict[str, Any], report_path: str | Path, data: str | Path, **devices: Any
) -> dict[str, Any]:
    """Queue a validation job of the report's variants with its gates (``devices``: ``devices=``,
    ``group=`` or ``profile=``); the reference outputs are each variant's reference, ``report["source"]``
    when it is a model file, else the variant itself."""
    from liteship.fleet.jobs_client import prepare_validation

    paths, names = variant_files(report, report_path)
    source = report.get("source")
    reference = source if isinstance(source, str) and Path(source).exists() else None
    prepared = prepare_validation(paths, data, reference=reference, names=names)
    return dict(
        client.queue(
            paths, names=names, kind="validate", validation=prepared, gates=report_gates(report), **devices
        )
    )


def device_gate(
    report: dict[str, Any], job: dict[str, Any], p50_by_group: dict[str, dict[str, float]] | None = None
) -> DeviceGate:
    """Per hardware group of a finished validate ``job``: the report's variants that pass the gates on
    the workstation *and* on the group's devices, and the group's choice among them (on the group's own
    device p50 when ``p50_by_group`` has it: a bench job's ``GroupChoice.device_p50_ms``; by default those
    of the report's ``device_selection.groups``, as ``liteship pipeline select --per-group`` writes them).

    Raises:
        PipelineError: ``job`` is not a validation job, or names none of the report's variants.
    """
    if job.get("kind") != "validate":
        raise PipelineError(
            f"job {job.get('id')} is a {job.get('kind', 'bench')} job; device gates need a validation job.",
            hint="Queue one with `liteship fleet validate` (or queue_for_report).",
        )
    variants = [v for v in report.get("variants", []) if v.get("ok")]
    workstation = {
        v["recipe"]: bool(v.get("gates_passed", v.get("validation_passed", True))) for v in variants
    }
    p50 = {
        r["recipe"]: r.get("device_p50_ms") or r.get("workstation_p50_ms")
        for r in (report.get("device_selection") or {}).get("variants", [])
    } or {v["recipe"]: v.get("p50_ms") for v in variants}
    if p50_by_group is None:
        p50_by_group = {
            g["group"]: dict(g.get("device_p50_ms") or {})
            for g in (report.get("device_selection") or {}).get("groups") or []
        }
    by_group: dict[str, dict[str, dict[str, Any]]] = {}
    for g in job.get("groups") or []:
        recipe = match_variant(variants, g["variant"])
        if recipe is not None:
            by_group.setdefault(g["group"], {})[recipe] = g
    if not by_group:
        raise PipelineError(
            f"job {job.get('id')} has figures for none of the report's variants.",
            hint="Queue the validation job from this report (`liteship fleet validate gate` does).",
        )
    groups = []
    for group, rows in sorted(by_group.items()):
        device: dict[str, bool | None] = {
            r: (bool(rows[r]["passed"]) if rows[r]["answered"] else None) if r in rows else None
            for r in workstation
        }
        excluded = {}
        for recipe, passed in device.items():
            if passed:
                continue
            row = rows.get(recipe)
            why = (row or {}).get("failures") or [
                f"no device figures (missing: {', '.join((row or {}).get('missing') or []) or 'not in the job'})"
            ]
            excluded[recipe] = [f"on {group}: {w}" for w in why]
        own = (p50_by_group or {}).get(group) or {}
        group_p50 = {r: own.get(r, p) for r, p in p50.items()}
        chosen, failures = select_on_p50(report, group_p50, {r: "; ".join(w) for r, w in excluded.items()})
        devices = sorted({d for r in rows.values() for d in r["devices"]})
        figures = {r: {k: row.get(k) for k in FIGURES} for r, row in rows.items()}
        groups.append(
            GroupVerdict(group, devices, workstation, device, {**failures, **excluded}, chosen, figures)
        )
    gate = DeviceGate(str(job.get("id")), dict((job.get("settings") or {}).get("gates") or {}), groups)
    failed = gate.failed_groups
    message = f"validated on {len(groups)} hardware group(s): " + "; ".join(
        f"{g.group} → {g.chosen or 'no variant passes'}" for g in groups
    )
    return replace(gate, message=message + (f" (failed: {', '.join(failed)})" if failed else ""))


@dataclass(frozen=True)
class Queued:
    """A validation job queued by the pipeline (or why none could be): what :func:`gate_in_pipeline` waits for."""

    client: Any = None
    job_id: str | None = None
    gates: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def queue_in_pipeline(
    report: dict[str, Any],
    *,
    data: str | Path,
    devices: list[str],
    samples: int | None,
    log: Callable[[str], None],
) -> Queued:
    """The pipeline's device validation (``validation.devices``, else ``bench.devices``): queue a
    validation job of the converted variants on ``devices`` with the pipeline's gates (server and admin
    token from $LITESHIP_SERVER / $LITESHIP_TOKEN). A fleet that cannot be reached, or variants that
    cannot share one job, give an error to report, not an exception."""
    from liteship.fleet.jobs_client import BenchClient, prepare_validation

    ran = [v for v in report["variants"] if v.get("ok") and v.get("path")]
    gates = report_gates(report)
    if not ran:
        return Queued(gates=gates, error="no converted variant to validate")
    source = report.get("source")
    # the source is the reference (a SavedModel folder too), as on the workstation; a PyTorch factory
    # spec is no path: then each variant is its own reference (the device vs the workstation)
    reference = source if isinstance(source, str) and Path(source).exists() else None
    paths, names = [Path(v["path"]) for v in ran], [job_name(v["recipe"]) for v in ran]
    try:
        prepared = prepare_validation(paths, data, reference=reference, limit=samples, names=names)
        client = BenchClient()
        job = client.queue(
            paths, names=names, devices=devices, kind="validate", validation=prepared, gates=dict(gates)
        )
    except LiteshipError as e:
        return Queued(gates=gates, error=str(e))
    log(
        f"device validation: job {job['id']} on {len(job['tasks'])} device(s), {prepared.samples} samples, "
        f"reference {reference or 'each variant on the workstation'}"
    )
    return Queued(client, str(job["id"]), gates)


def gate_in_pipeline(
    report: dict[str, Any],
    queued: Queued,
    *,
    timeout_s: float,
    p50_by_group: dict[str, dict[str, float]] | None,
    log: Callable[[str], None],
) -> DeviceGate:
    """Wait for the pipeline's validation job (at most ``timeout_s``, like the device bench), then gate
    every hardware group on its figures (:func:`device_gate`). A device still silent at the timeout fails
    its group (fail-safe, as ``liteship fleet validate``); a job that could not be queued or read gives a
    flagged fallback that gates nothing."""
    gate: DeviceGate | None = None
    error = queued.error
    if queued.job_id is not None:
        log(f"device validation: waiting up to {timeout_s:g} s for job {queued.job_id}")
        try:
            with track_until("devices validated") as update:
                job = queued.client.wait(
                    queued.job_id,
                    timeout_s=timeout_s,
                    on_progress=lambda j: update(
                        sum(t["state"] not in ("queued", "running") for t in j["tasks"]), len(j["tasks"])
                    ),
                )
            gate = device_gate(report, job, p50_by_group)
            silent = [t["device_id"] for t in job["tasks"] if t["state"] in ("queued", "running")]
            if silent:
                gate = replace(
                    gate,
                    message=f"timed out after {timeout_s:g} s waiting for {', '.join(silent)} (their "
                    f"groups fail); {gate.message}",
                )
        except LiteshipError as e:
            error = str(e)
    if gate is None:
        gate = DeviceGate(
            job_id=queued.job_id or "",
            gates=queued.gates,
            groups=[],
            message=f"the device validation could not run ({error}); no hardware group was gated on "
            "device figures (flagged as workstation-only).",
            fallback=True,
        )
    color = "yellow" if gate.fallback else ("red" if gate.failed_groups else "green")
    log(f"[bold {color}]device validation[/] {gate.message}")
    return gate


def apply(report: dict[str, Any], gate: DeviceGate) -> dict[str, Any]:
    """``report`` with ``device_validation`` (the hook: the report's own ``chosen`` is left as it is)."""
    return {**report, "device_validation": gate.to_dict()}


__all__ = [
    "DeviceGate",
    "GroupVerdict",
    "Queued",
    "apply",
    "device_gate",
    "gate_in_pipeline",
    "queue_for_report",
    "queue_in_pipeline",
    "report_gates",
]
