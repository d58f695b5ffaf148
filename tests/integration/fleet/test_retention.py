"""Issue 21 item 8: the retention policy. Raw windows and revert rows older than ``retention_days`` are
deleted after being folded into the hourly sums (drift is unchanged), never under an active rollout, and
``retention_days = 0`` keeps everything (real app, real SQLite)."""

from __future__ import annotations

import time

from sqlalchemy import func, select, update

from liteship.fleet import aggregate, crud, retention
from liteship.fleet.models import Device, Revert, Rollout, TelemetryCreate, TelemetryWindow

DAY = 86400.0


def _store(fleet, make_package, now: float) -> None:
    for version in ("1.0.0", "1.1.0"):
        assert fleet.publish(make_package("digits", version), channel="stable").status_code == 201
    fleet.register("old-1")
    with fleet.app.state.sessionmaker() as session:
        device = session.get(Device, "old-1")
        for n, age in enumerate([10 * DAY, 5 * DAY, 3 * DAY, 0.5 * DAY, 60.0]):
            w = TelemetryCreate(
                window_id=f"r{n}", model_id="digits", model_version="1.1.0", started=now - age - 60,
                ended=now - age, inferences=40, confidence_hist=[2] * 20,
            )  # fmt: skip
            crud.add_telemetry(session, device=device, window=w)
            session.add(
                Revert(device_id="old-1", model_id="digits", version="1.0.0", reason="x", by_server=False,
                       at=now - age, received_at=now - age)
            )  # fmt: skip
        session.commit()


def count(session, table) -> int:
    return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_old_rows_are_pruned_and_drift_is_unchanged(sqlite_fleet, make_package):
    now = time.time()
    _store(sqlite_fleet, make_package, now)
    with sqlite_fleet.app.state.sessionmaker() as session:
        before = aggregate.drift_series(session, model_id="digits")
        pruned = retention.prune(session, retention_days=4, now=now)
        assert (pruned.windows, pruned.reverts) == (2, 2) and pruned.cutoff == now - 4 * DAY
        assert count(session, TelemetryWindow) == 3 and count(session, Revert) == 3
        assert aggregate.drift_series(session, model_id="digits") == before  # folded, not lost
        assert min(w.ended for w in session.scalars(select(TelemetryWindow))) >= now - 4 * DAY


def test_nothing_is_pruned_under_an_active_rollout_or_with_retention_off(sqlite_fleet, make_package):
    now = time.time()
    _store(sqlite_fleet, make_package, now)
    assert sqlite_fleet.client.post(
        "/api/v1/rollouts", json={"model_id": "digits", "candidate_version": "1.1.0", "control_version": "1.0.0"},
        headers=sqlite_fleet.admin,
    ).status_code in (200, 201)  # fmt: skip
    with sqlite_fleet.app.state.sessionmaker() as session:
        assert retention.prune(session, retention_days=0, now=now).windows == 0
        assert count(session, TelemetryWindow) == 5
        session.execute(update(Rollout).values(created_at=now - 6 * DAY))  # started 6 days ago
        session.commit()
        pruned = retention.prune(session, retention_days=1, now=now)
        assert pruned.cutoff == now - 6 * DAY and pruned.windows == 1  # only the 10-day-old one
        assert count(session, TelemetryWindow) == 4 and count(session, Revert) == 4


def test_the_pruner_runs_at_most_hourly():
    pruner = retention.Pruner(retention_days=30)
    assert pruner.due(now=1000.0) and not pruner.due(now=1000.0 + 3599) and pruner.due(now=1000.0 + 3601)
    assert not retention.Pruner(retention_days=0).due(now=0.0)
