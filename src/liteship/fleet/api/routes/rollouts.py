"""Rollouts (admin only): start, list, show with decisions, pause/resume/abort/promote, evaluate."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, status
from sqlalchemy.orm import Session

from liteship.fleet import crud, groups
from liteship.fleet import rollout as machine
from liteship.fleet.api.deps import AdminAuth, SessionDep, SettingsDep
from liteship.fleet.models import (
    MAX_DB_ID,
    DecisionPublic,
    Release,
    Rollout,
    RolloutCreate,
    RolloutPublic,
    RolloutState,
)

RolloutId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="a rollout id")]

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"])


def rollout_public(session: Session, rollout: Rollout) -> RolloutPublic:
    """The rollout with its decisions; an active one also with its stage plan and the engine's next move."""
    control, candidate = (
        session.get(Release, rollout.control_release_id),
        session.get(Release, rollout.candidate_release_id),
    )
    assert control is not None and candidate is not None
    extra: dict[str, Any] = {}
    if RolloutState(rollout.state).active:
        buckets = machine.model_buckets(session, model_id=rollout.model_id)
        plans = machine.stage_plans(
            buckets,
            rollout.stages,
            min_devices=rollout.thresholds.get("min_devices", 0),
            min_arm_devices=rollout.min_arm_devices,
        )
        extra = {
            "plan": [p.to_dict() for p in plans],
            "warnings": machine.plan_warnings(
                plans[rollout.stage_index :],
                min_devices=rollout.thresholds.get("min_devices", 0),
                n_devices=len(buckets),
            ),
            "next": machine.verdict_now(session, rollout=rollout).to_dict(),
        }
    return RolloutPublic(
        id=rollout.id,
        model_id=rollout.model_id,
        control_version=control.version,
        candidate_version=candidate.version,
        stages=rollout.stages,
        stage_index=rollout.stage_index,
        percent=rollout.stages[rollout.stage_index],
        state=rollout.state,
        thresholds=rollout.thresholds,
        created_at=rollout.created_at,
        stage_started_at=rollout.stage_started_at,
        updated_at=rollout.updated_at,
        decisions=[
            DecisionPublic.model_validate(d) for d in crud.decisions_of(session, rollout_id=rollout.id)
        ],
        min_arm_devices=rollout.min_arm_devices,
        halt_scope=rollout.halt_scope,
        halted_groups=list(rollout.halted_groups or []),
        tags=list(rollout.tags or []),
        groups=groups.groups_public(session, rollout=rollout),
        **extra,
    )


@router.post("", response_model=RolloutPublic, status_code=status.HTTP_201_CREATED)
def start(body: RolloutCreate, session: SessionDep, settings: SettingsDep, _: AdminAuth) -> RolloutPublic:
    """Start a rollout of a candidate version beside the control (default: the stable channel)."""
    thresholds = {"min_predictions": settings.min_predictions, "min_devices": settings.min_devices}
    rollout = machine.create_rollout(
        session,
        model_id=body.model_id,
        candidate_version=body.candidate_version,
        control_version=body.control_version,
        stages=body.stages or list(settings.default_stages),
        thresholds={**thresholds, **(body.thresholds or {})},
        min_arm_devices=body.min_arm_devices,
    )
    rollout.halt_scope = body.halt_scope  # per-group rollouts (issue 24): the operator's policy
    rollout.tags = list(dict.fromkeys(body.tags)) or None  # only devices carrying all these tags
    session.commit()
    return rollout_public(session, rollout)


@router.get("", response_model=list[RolloutPublic])
def list_rollouts(session: SessionDep, _: AdminAuth, model_id: str | None = None) -> list[RolloutPublic]:
    return [rollout_public(session, r) for r in crud.list_rollouts(session, model_id=model_id)]


@router.get("/{rollout_id}", response_model=RolloutPublic)
def show(rollout_id: RolloutId, session: SessionDep, _: AdminAuth) -> RolloutPublic:
    return rollout_public(session, crud.get_rollout(session, rollout_id=rollout_id))


@router.post("/{rollout_id}/{action}", response_model=RolloutPublic)
def act(
    rollout_id: RolloutId,
    action: Literal["pause", "resume", "abort", "promote", "evaluate"],
    session: SessionDep,
    _: AdminAuth,
) -> RolloutPublic:
    """Change a rollout's state (recorded as an admin decision) or run the decision engine now."""
    rollout = crud.get_rollout(session, rollout_id=rollout_id)
    session.refresh(rollout, with_for_update=True)
    if action == "evaluate":
        machine.evaluate_rollout(session, rollout=rollout, record_wait=True)
    else:
        machine.change_rollout(session, rollout=rollout, action=action)
    session.commit()
    return rollout_public(session, rollout)
