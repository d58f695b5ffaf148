"""Issue 21 item 9: drift from the hourly sums gives exactly what the rescan of every window gives, on
the same data (SQLite and PostgreSQL), for whole-hour periods, for periods that fall back to the rescan,
and for a ``since`` (or a rollout start) in the middle of an hour. The migration's backfill folds in the
windows stored before it."""

from __future__ import annotations

import time

import numpy as np
from sqlalchemy import select, update

from liteship.fleet import aggregate, crud
from liteship.fleet.models import Device, Rollout, TelemetryCreate, TelemetryHour


def _fill(fleet, make_package, n_windows: int = 600) -> float:
    """Two releases, a rollout started 3 days and 1234 s ago, ``n_windows`` windows over 5 days."""
    for version in ("1.0.0", "1.1.0"):
        assert fleet.publish(make_package("digits", version)).status_code == 201
    for i in range(8):
        fleet.register(f"agg-{i}")
    assert fleet.rollout("1.1.0", stages=[50, 100]).status_code == 201
    now = time.time()
    rng = np.random.default_rng(7)
    with fleet.app.state.sessionmaker() as session:
        session.execute(update(Rollout).values(created_at=now - 3 * 86400 - 1234))
        devices = list(session.scalars(select(Device).order_by(Device.id)))
        for n in range(n_windows):
            ended = now - float(rng.uniform(0, 5 * 86400))
            version = "1.1.0" if n % 2 else "1.0.0"
            skew = 3 if version == "1.1.0" else 0
            hist = rng.multinomial(int(rng.integers(5, 200)), np.roll(np.linspace(1, 3, 20), skew) / 42.0)
            window = TelemetryCreate(
                window_id=f"w{n}", model_id="digits", model_version=version, started=ended - 60,
                ended=ended, inferences=int(hist.sum()), confidence_hist=[int(c) for c in hist],
            )  # fmt: skip
            assert not crud.add_telemetry(session, device=devices[n % len(devices)], window=window)
        session.commit()
    return now


def test_drift_from_hourly_sums_equals_the_rescan(fleet, make_package):
    now = _fill(fleet, make_package)
    with fleet.app.state.sessionmaker() as session:
        assert session.scalars(select(TelemetryHour)).first() is not None
        cases = [
            (3600.0, 0.0), (7200.0, 0.0), (86400.0, 0.0), (3600.0, now - 2.5 * 86400 + 17.3),
            (86400.0, now - 4 * 86400 - 99.0), (1800.0, 0.0), (5400.0, now - 86400),
        ]  # fmt: skip
        for period_s, since in cases:
            fast = aggregate.drift_series(session, model_id="digits", period_s=period_s, since=since)
            slow = aggregate.drift_series(
                session, model_id="digits", period_s=period_s, since=since, rescan=True
            )
            assert fast == slow, (period_s, since)
        series = aggregate.drift_series(session, model_id="digits")
        candidate = next(s for s in series if s["version"] == "1.1.0")
        assert candidate["points"] and candidate["versus_control"]["points"]  # not a trivial comparison
        assert sum(s["windows"] for s in series) == 600


def test_the_migration_folds_in_windows_stored_before_it(fleet, make_package, tmp_path):
    """Downgrade to 0006 (drops the sums), store windows, upgrade: the backfill gives the rescan's drift."""
    from alembic import command
    from alembic.config import Config

    from liteship.fleet.app import MIGRATIONS

    _fill(fleet, make_package, n_windows=200)
    headers = fleet.register("reverter")
    events = [{"event": "reverted", "version": "0.9.0", "at": 1e9 + i} for i in range(3)]
    events.append({"event": "reverted", "version": "0.9.1", "at": 1e9, "by": "server"})  # not its own
    for _ in range(2):  # the same events resent: stored and counted once
        body = {"model_id": "digits", "health": {"status": "ok", "events": events}}
        assert (
            fleet.client.post("/api/v1/devices/reverter/checkin", json=body, headers=headers).status_code
            == 200
        )

    def own_reverts() -> int:
        listing = fleet.client.get("/api/v1/devices", headers=fleet.admin).json()
        return next(d["reverts"] for d in listing if d["id"] == "reverter")

    assert own_reverts() == 3
    with fleet.app.state.sessionmaker() as session:
        expected = aggregate.drift_series(session, model_id="digits", rescan=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", str(fleet.app.state.engine.url))
    fleet.app.state.engine.dispose()
    command.downgrade(cfg, "0006")
    command.upgrade(cfg, "head")
    with fleet.app.state.sessionmaker() as session:
        assert session.scalars(select(TelemetryHour)).first() is not None
        assert aggregate.drift_series(session, model_id="digits") == expected
    assert own_reverts() == 3  # the backfill counted them from the reverts table
