"""Per-group rollouts (issue 24): A/B within each hardware group of a multi-variant candidate.

When the candidate release has variants, each variant is a **group**: the devices whose profile
selects it (``Plan.group_of``), on either arm. The engine (:func:`liteship.fleet.robust.decide_robust`)
compares candidate and control devices of the same group, so a variant that is worse on Pi 4 is seen
on Pi 4 and not averaged away by a good Pi 5 variant.

What a worse group does is the operator's choice at ``rollout start`` (``halt_scope``):

- ``release`` (default, the conservative one): any worse group halts the whole rollout;
- ``group``: that group alone is halted (its devices go back to the control, the decision is stored
  as ``halt-group``); the other groups go on. When every group is halted the rollout is halted.
  A rollout promoted with halted groups keeps those groups on the control release (``group-held``)
  until another release becomes stable.

The stage advances (or promotes) when every group that is not halted says so; one waiting group keeps
the stage waiting. A candidate without variants is one group: nothing changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from liteship.fleet import crud, decisions, robust
from liteship.fleet.aggregate import parts_now
from liteship.fleet.checkin import load_plan
from liteship.fleet.models import Device, Release, Rollout
from liteship.fleet.variants import pick, refs, variants_of

SCOPES = ("release", "group")


def candidate_groups(session: Session, *, rollout: Rollout) -> list[str]:
    """The candidate's variant names (its groups); empty when it has fewer than two variants."""
    rows = variants_of(session, [rollout.candidate_release_id]).get(rollout.candidate_release_id, [])
    return [r.name for r in rows] if len(rows) >= 2 else []


def device_groups(session: Session, *, rollout: Rollout) -> dict[str, str]:
    """``device id → group`` for the model's devices (the candidate's variant for each profile)."""
    candidate = session.get(Release, rollout.candidate_release_id)
    assert candidate is not None
    variants = refs(variants_of(session, [candidate.id]).get(candidate.id, []))
    rows = session.execute(select(Device.id, Device.runtime).where(Device.model_id == rollout.model_id)).all()
    out = {}
    for device_id, runtime in rows:
        chosen = pick(variants, runtime)
        if chosen is not None:
            out[device_id] = chosen.name
    return out


def group_verdicts(session: Session, *, rollout: Rollout) -> dict[str, decisions.Verdict]:
    """The engine's verdict per group not yet halted, on the current stage's telemetry (nothing changes)."""
    names = candidate_groups(session, rollout=rollout)
    if not names:
        return {}
    halted = set(rollout.halted_groups or [])
    members = device_groups(session, rollout=rollout)
    (control, skipped_control), (candidate, skipped_candidate) = parts_now(session, rollout=rollout)
    out = {}
    for group in names:
        if group in halted:
            continue
        out[group] = robust.decide_robust(
            {d: p for d, p in control.items() if members.get(d) == group},
            {d: p for d, p in candidate.items() if members.get(d) == group},
            skipped=(skipped_control, skipped_candidate),
            stage_index=rollout.stage_index,
            n_stages=len(rollout.stages),
            thresholds=rollout.thresholds,
        )
    return out


def combine(rollout: Rollout, verdicts: dict[str, decisions.Verdict]) -> tuple[decisions.Verdict, list[str]]:
    """The rollout's verdict from its groups' and the groups to halt alone (``halt_scope="group"``).

    Returns:
        ``(verdict for the whole rollout, groups to halt now)``.
    """
    worse = sorted(g for g, v in verdicts.items() if v.action == "halt")
    numbers: dict[str, Any] = {"groups": {g: {"action": v.action, **v.numbers} for g, v in verdicts.items()}}
    reasons = [f"group {g}: {r}" for g, v in sorted(verdicts.items()) for r in v.reasons]
    remaining = [g for g in verdicts if g not in worse]
    if worse and (rollout.halt_scope != "group" or not remaining):
        return decisions.Verdict("halt", reasons, {**numbers, "halted_groups": worse}), []
    actions = {verdicts[g].action for g in remaining}
    if not remaining or "wait" in actions:
        action = "wait"
    else:
        action = "promote" if "promote" in actions else "advance"
    waiting = sorted(f"{g}:{w}" for g in remaining for w in verdicts[g].numbers.get("waiting_for", []) or [])
    if action == "wait":
        numbers["waiting_for"] = waiting
    return decisions.Verdict(action, reasons, numbers), worse


def halt_groups(session: Session, *, rollout: Rollout, groups: list[str], verdicts: dict[str, Any]) -> None:
    """Halt ``groups`` only (``halt_scope="group"``): stored as a ``halt-group`` decision; their devices
    go back to the control at their next check-in."""
    rollout.halted_groups = sorted({*(rollout.halted_groups or []), *groups})
    crud.bump_plan(session, model_id=rollout.model_id)
    crud.add_decision(
        session,
        rollout=rollout,
        action="halt-group",
        by="engine",
        reasons=[f"group {g}: {r}" for g in groups for r in verdicts[g].reasons],
        numbers={"halted_groups": rollout.halted_groups, **{g: verdicts[g].numbers for g in groups}},
    )


def groups_public(session: Session, *, rollout: Rollout) -> dict[str, Any]:
    """Per group: its devices on each arm now, whether it is halted, and (while active) the engine's
    verdict for it — the rollout's per-group progress for the API and the dashboard."""
    names = candidate_groups(session, rollout=rollout)
    if not names:
        return {}
    plan = load_plan(session, model_id=rollout.model_id)
    halted = set(rollout.halted_groups or [])
    verdicts = group_verdicts(session, rollout=rollout) if rollout.state in ("running", "paused") else {}
    out: dict[str, Any] = {g: {"candidate": 0, "control": 0, "halted": g in halted} for g in names}
    for device in crud.devices_of_model(session, model_id=rollout.model_id):
        a = plan.assign(
            device_id=device.id,
            model_id=device.model_id,
            bucket=device.bucket,
            current_version=device.model_version,
            profile=device.runtime,
            tags=device.tags,
            own_windows=device.update_windows,
        )
        group = a.group or plan.group_of(device.runtime)
        if group in out and a.arm in ("candidate", "control"):
            out[group][a.arm] += 1
    for g, v in verdicts.items():
        out[g]["next"] = {"action": v.action, "reasons": v.reasons[:3]}
    return out


__all__ = [
    "SCOPES",
    "candidate_groups",
    "combine",
    "device_groups",
    "group_verdicts",
    "groups_public",
    "halt_groups",
]
