"""The rollout state machine: start, change (pause/resume/abort/promote, halt/advance by the engine),
evaluate with the decision engine, and the stage plan that says what each stage puts on each arm.

States are :class:`~liteship.fleet.models.RolloutState`::

    running ⇄ paused        (admin)
    running → running       advance (engine): next stage
    running → halted        halt (engine)
    running|paused → aborted | promoted   (admin; promote also by the engine at the last stage)

Every transition is stored as a :class:`~liteship.fleet.models.Decision`. ``wait`` verdicts are stored
too, but not every one: see :func:`evaluate_rollout`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.orm import Session

from liteship.errors import Conflict, FleetError, NotFound
from liteship.fleet import crud, decisions, groups, robust
from liteship.fleet.aggregate import parts_now
from liteship.fleet.checkin import STABLE
from liteship.fleet.models import Decision, Release, Rollout, RolloutState

WAIT_HEARTBEAT_S = 600.0  # an unchanged wait verdict is stored again after this long

# action -> (states it applies to, the state after it)
TRANSITIONS: dict[str, tuple[frozenset[RolloutState], RolloutState]] = {
    "pause": (frozenset({RolloutState.RUNNING}), RolloutState.PAUSED),
    "resume": (frozenset({RolloutState.PAUSED}), RolloutState.RUNNING),
    "abort": (frozenset({RolloutState.RUNNING, RolloutState.PAUSED}), RolloutState.ABORTED),
    "promote": (frozenset({RolloutState.RUNNING, RolloutState.PAUSED}), RolloutState.PROMOTED),
    "halt": (frozenset({RolloutState.RUNNING}), RolloutState.HALTED),
    # halt_scope "group" (issue 24): one hardware group halted, the rollout runs on (fleet.groups)
    "advance": (frozenset({RolloutState.RUNNING}), RolloutState.RUNNING),
}


@dataclass(frozen=True)
class StagePlan:
    """What one stage puts on each arm, with the devices registered for the model now."""

    stage: int  # 1-based
    percent: float
    candidate_devices: int
    control_devices: int
    bucket_cutoff: int  # candidate = buckets below it (0..10000)
    can_decide: bool  # both arms can reach ``min_devices``
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bucket_cutoff(buckets: list[int], percent: float, min_arm_devices: int) -> int:
    """The bucket below which devices run the candidate at ``percent`` %.

    ``percent·100`` (buckets are 0..9999), raised so that at least ``min_arm_devices`` of the known
    devices (``buckets``) run the candidate, and lowered so that as many keep running the control. A
    fleet smaller than ``2·min_arm_devices`` is split in halves (the candidate gets the smaller one), so
    both arms have devices whenever there are at least two. At 100 % every device runs the candidate.
    """
    cutoff = math.ceil(percent * 100.0)  # buckets are integers: b < x ⇔ b < ceil(x)
    if percent >= 100 or min_arm_devices <= 0 or not buckets:
        return cutoff
    ordered = sorted(buckets)
    n = len(ordered)
    k = min(min_arm_devices, n // 2) if n >= 2 else 1  # both arms get devices when there are two
    cutoff = max(cutoff, ordered[k - 1] + 1)
    if n >= 2:  # keep ≥ k on the control (buckets at or above the cutoff)
        cutoff = min(cutoff, ordered[n - k])
    return cutoff


def stage_plans(
    buckets: list[int], stages: list[float], *, min_devices: float, min_arm_devices: int
) -> list[StagePlan]:
    """:class:`StagePlan` per stage for a fleet whose devices have ``buckets``."""
    out = []
    need = int(min_devices)
    for i, percent in enumerate(stages):
        cutoff = bucket_cutoff(buckets, percent, min_arm_devices)
        cand = sum(1 for b in buckets if b < cutoff)
        ctrl = len(buckets) - cand
        last = percent >= 100
        # at 100 % the control is compared over the whole rollout: its devices of the earlier stages
        ok = cand >= need and (last or ctrl >= need)
        if ok:
            note = f"{cand} candidate / {ctrl} control devices: min_devices {need} can be met"
        else:
            short = [f"candidate {cand}"] if cand < need else []
            short += [] if last or ctrl >= need else [f"control {ctrl}"]
            note = (
                f"{cand} candidate / {ctrl} control devices: min_devices {need} cannot be met "
                f"({', '.join(short)}); the engine waits until more devices register"
            )
        out.append(StagePlan(i + 1, percent, cand, ctrl, cutoff, ok, note))
    return out


def plan_warnings(plans: list[StagePlan], *, min_devices: float, n_devices: int) -> list[str]:
    """What an operator must know at ``rollout start``: stages that cannot decide, and what to do, with
    the settings that work for this fleet's size (:func:`small_fleet_advice`)."""
    blocked = [p for p in plans if not p.can_decide]
    if not blocked:
        return []
    need = int(min_devices)
    first = blocked[0]
    return [
        f"stage {first.stage} ({first.percent:g} %) puts {first.candidate_devices} of the {n_devices} "
        f"registered devices on the candidate and {first.control_devices} on the control; the engine "
        f"needs ≥ {need} devices per arm, so this rollout waits (and is never decided automatically) "
        "until enough devices register.",
        small_fleet_advice(need, n_devices),
    ]


def small_fleet_advice(need: int, n_devices: int) -> str:
    """The settings under which a fleet of ``n_devices`` decides every stage: ``min_arm_devices`` (and,
    when half the fleet is fewer than ``need`` devices, the ``min_devices`` threshold) = what fits."""
    if n_devices < 2:
        return (
            f"A rollout compares two arms of devices and this model has {n_devices} registered: register "
            "at least 2 devices, or promote/abort by hand."
        )
    if n_devices >= 2 * need:
        return (
            f"For a small fleet: start it with min_arm_devices={need} (CLI `--min-arm-devices {need}`), "
            f"which puts at least {need} devices on each arm from stage 1 (this fleet has {n_devices}), "
            "or promote/abort by hand."
        )
    half = n_devices // 2
    return (
        f"With {n_devices} devices each arm can hold at most {half}, fewer than min_devices {need}: start "
        f"it with min_arm_devices={half} and the threshold min_devices={half} (CLI `--min-arm-devices "
        f"{half} --threshold min_devices={half}`); the verdict then rests on {half} device(s) per arm "
        "(min_predictions still applies). Or promote/abort by hand."
    )


def model_buckets(session: Session, *, model_id: str) -> list[int]:
    return [d.bucket for d in crud.devices_of_model(session, model_id=model_id)]


def _check_stages(stages: list[float]) -> None:
    if (
        any(not (math.isfinite(s) and 0 < s <= 100) for s in stages)
        or any(b <= a for a, b in zip(stages, stages[1:], strict=False))
        or stages[-1] != 100
    ):
        raise FleetError(f"stages must increase within (0, 100] and end at 100, got {stages}.")


def create_rollout(
    session: Session,
    *,
    model_id: str,
    candidate_version: str,
    control_version: str | None,
    stages: list[float],
    thresholds: dict[str, float],
    min_arm_devices: int = 0,
) -> Rollout:
    """Start a rollout of ``candidate_version`` beside the control (default: the stable channel).

    Raises:
        NotFound: unknown model or version. Conflict: another rollout of the model is active, or the
        candidate is the control. FleetError: stages not increasing within (0, 100] or ending below 100.
    """
    _check_stages(stages)
    unknown = set(thresholds) - set(decisions.DEFAULT_THRESHOLDS)
    if unknown:
        raise FleetError(
            f"unknown thresholds {sorted(unknown)}; available: {sorted(decisions.DEFAULT_THRESHOLDS)}."
        )
    if not 0 <= min_arm_devices <= 100_000:
        raise FleetError(f"min_arm_devices must be within 0..100000, got {min_arm_devices}.")
    if crud.get_model(session, model_id=model_id) is None:
        raise NotFound(f"no model {model_id!r}.", hint="Publish a package first.")
    candidate = crud.get_release(session, model_id=model_id, version=candidate_version)
    if control_version is None:
        control = crud.channels_of(session, model_id=model_id).get(STABLE)
        if control is None:
            raise Conflict(f"{model_id} has no stable release to compare with.")
    else:
        control = crud.get_release(session, model_id=model_id, version=control_version)
    if control.id == candidate.id:
        raise Conflict(f"the candidate {candidate_version} is already the control.")
    current = crud.active_rollout(session, model_id=model_id)
    if current is not None:
        raise Conflict(
            f"rollout {current.id} of {model_id} is {current.state}.", hint="Promote or abort it first."
        )
    cutoff = bucket_cutoff(model_buckets(session, model_id=model_id), stages[0], min_arm_devices)
    rollout = crud.add_rollout(
        session,
        model_id=model_id,
        control_release_id=control.id,
        candidate_release_id=candidate.id,
        stages=stages,
        thresholds={**decisions.DEFAULT_THRESHOLDS, **thresholds},
        min_arm_devices=min_arm_devices,
        bucket_cutoff=cutoff,
    )
    crud.bump_plan(session, model_id=model_id)
    return rollout


def change_rollout(
    session: Session,
    *,
    rollout: Rollout,
    action: str,
    by: str = "admin",
    reasons: list[str] | None = None,
    numbers: dict[str, Any] | None = None,
) -> Decision:
    """Apply ``pause | resume | abort | promote | halt | advance`` and record it as a decision.

    Raises:
        Conflict: the action does not apply to the rollout's state.
    """
    if action not in TRANSITIONS:
        raise FleetError(f"unknown rollout action {action!r}; available: {sorted(TRANSITIONS)}.")
    allowed, new_state = TRANSITIONS[action]
    if rollout.state not in allowed:
        raise Conflict(f"cannot {action} rollout {rollout.id}: it is {rollout.state}.")
    now = time.time()
    if action == "advance":
        rollout.stage_index += 1
        rollout.stage_started_at = now
        buckets = model_buckets(session, model_id=rollout.model_id)
        rollout.bucket_cutoff = bucket_cutoff(
            buckets, rollout.stages[rollout.stage_index], rollout.min_arm_devices
        )
    if action == "promote":
        rollout.stage_index = len(rollout.stages) - 1
        candidate = session.get(Release, rollout.candidate_release_id)
        assert candidate is not None  # a foreign key of the rollout
        crud.set_channel(session, model_id=rollout.model_id, name=STABLE, release=candidate)
    rollout.state, rollout.updated_at = new_state, now
    crud.bump_plan(session, model_id=rollout.model_id)
    return crud.add_decision(
        session,
        rollout=rollout,
        action=action,
        by=by,
        reasons=reasons or [f"{action} by {by}"],
        numbers=numbers or {},
    )


def arms_now(session: Session, *, rollout: Rollout) -> tuple[decisions.ArmStats, decisions.ArmStats]:
    """``(control, candidate)`` over the current stage: what the engine compares."""
    (control, skipped_control), (candidate, skipped_candidate) = parts_now(session, rollout=rollout)
    return (
        robust.merge(control.values(), skipped=skipped_control),
        robust.merge(candidate.values(), skipped=skipped_candidate),
    )


def verdict_now(session: Session, *, rollout: Rollout) -> decisions.Verdict:
    """What the decision engine says about the current stage's telemetry (nothing is changed); no one
    device can turn its halt into an advance (:func:`liteship.fleet.robust.decide_robust`). A candidate
    with variants is decided per hardware group (:mod:`liteship.fleet.groups`)."""
    return _verdict(session, rollout)[0]


def _verdict(
    session: Session, rollout: Rollout
) -> tuple[decisions.Verdict, list[str], dict[str, decisions.Verdict]]:
    """``(verdict, groups to halt alone, per-group verdicts)``."""
    per_group = groups.group_verdicts(session, rollout=rollout)
    if per_group:
        verdict, to_halt = groups.combine(rollout, per_group)
        return verdict, to_halt, per_group
    return _whole_verdict(session, rollout), [], {}


def _whole_verdict(session: Session, rollout: Rollout) -> decisions.Verdict:
    (control, skipped_control), (candidate, skipped_candidate) = parts_now(session, rollout=rollout)
    return robust.decide_robust(
        control,
        candidate,
        skipped=(skipped_control, skipped_candidate),
        stage_index=rollout.stage_index,
        n_stages=len(rollout.stages),
        thresholds=rollout.thresholds,
    )


def _wait_is_news(session: Session, rollout: Rollout, verdict: decisions.Verdict, now: float) -> bool:
    """Store a wait when the last decision is not a wait of this stage waiting for the same things,
    or that wait is older than :data:`WAIT_HEARTBEAT_S`."""
    last = crud.last_decision(session, rollout_id=rollout.id)
    if last is None or last.action != "wait" or last.stage_index != rollout.stage_index:
        return True
    if last.numbers.get("waiting_for") != verdict.numbers.get("waiting_for"):
        return True
    return now - last.at >= WAIT_HEARTBEAT_S


def evaluate_rollout(session: Session, *, rollout: Rollout, record_wait: bool = False) -> decisions.Verdict:
    """Run the decision engine on the current stage's telemetry and apply its verdict.

    A ``wait`` verdict is stored when ``record_wait`` (an explicit evaluation), and otherwise when it
    is news: the first wait of a stage, a change of what it waits for (which arm lacks predictions or
    devices), or every :data:`WAIT_HEARTBEAT_S` while unchanged. So the table shows every automatic
    verdict's reasons without one row per telemetry window.
    """
    verdict, to_halt, per_group = _verdict(session, rollout)
    now = time.time()
    rollout.evaluated_at = now
    if rollout.state != RolloutState.RUNNING:
        return verdict
    if to_halt:  # halt_scope "group": the worse groups stop, the others go on
        groups.halt_groups(session, rollout=rollout, groups=to_halt, verdicts=per_group)
    if verdict.action == "wait":
        if record_wait or _wait_is_news(session, rollout, verdict, now):
            crud.add_decision(
                session,
                rollout=rollout,
                action="wait",
                by="engine",
                reasons=verdict.reasons,
                numbers=verdict.numbers,
            )
        return verdict
    change_rollout(
        session,
        rollout=rollout,
        action=verdict.action,
        by="engine",
        reasons=verdict.reasons,
        numbers=verdict.numbers,
    )
    return verdict


def evaluate_if_due(session: Session, *, model_id: str | None, interval_s: float) -> None:
    """After new telemetry: evaluate the model's running rollout when its last evaluation is older than
    ``interval_s``. Concurrent posts evaluate it once per interval: the evaluation is claimed with one
    atomic UPDATE (:func:`crud.claim_evaluation`), the first statement of its transaction, so a post
    that waited for another's claim reads the state that one left. Commits."""
    rollout = crud.active_rollout(session, model_id=model_id) if model_id else None
    if rollout is None or rollout.state != RolloutState.RUNNING:
        return
    now = time.time()
    if now - (rollout.evaluated_at or 0.0) < interval_s:
        return
    rollout_id = rollout.id
    session.commit()  # end the read: the claim must start a transaction (SQLite: no stale snapshot)
    if crud.claim_evaluation(session, rollout_id=rollout_id, now=now, interval_s=interval_s):
        locked = crud.lock_rollout(session, rollout_id=rollout_id)
        if locked is not None:
            evaluate_rollout(session, rollout=locked)
    session.commit()
