"""Cost of a long history (issue 21, item 9): drift and the dashboard with 100k stored windows and
1M revert rows, from the hourly sums against the rescan of every window.

Builds a real fleet server app (SQLite by default, or ``--db postgresql+psycopg://…``) with two releases
and an active rollout started a day ago, fills it with ``--windows`` telemetry windows over ``--days``
days from ``--devices`` devices (the hourly sums are folded in as the server does on arrival) and
``--reverts`` revert rows, then times, ``--repeat`` times each (median and max reported):

- ``drift (rescan)``: ``aggregate.drift_series(rescan=True)``, what every load did before (every window
  read and re-validated);
- ``GET /api/v1/drift``: the endpoint, from the hourly sums;
- ``GET /dashboard``: the whole page (devices with revert counts, rollout panels, drift).

    .venv/bin/python benchmarks/fleet_history.py
    .venv/bin/python benchmarks/fleet_history.py --windows 10000 --reverts 100000   # quick

Prints one JSON object (add ``--table`` for Markdown rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILE = ROOT / "tests/data/third_party/mobilenet_v1_0.25_224_quant.tflite"
MODEL_ID = "history"
ADMIN, ENROLL = "admin-token-for-bench-0123456789", "enroll-token-for-bench-0123456789"
DAY = 86400.0


def build_app(tmp: Path, db: str | None) -> Any:
    from liteship.fleet.app import create_app
    from liteship.fleet.settings import Settings
    from liteship.package import build_package, generate_keypair

    keys = generate_keypair(tmp / "bench.key")
    packages = []
    hist = [1.0] * 20
    for version in ("1.0.0", "1.1.0"):
        info = build_package(
            MODEL_FILE, tmp / f"{MODEL_ID}-{version}.lsp", model_id=MODEL_ID, version=version,
            private_key=keys.private_path, reference_histogram={"bins": list(np.linspace(0, 1, 21)), "counts": hist},
        )  # fmt: skip
        packages.append(Path(info.path))
    settings = Settings(
        environment="production", data_dir=tmp / "data", database_url=db, admin_token=ADMIN,
        enrollment_token=ENROLL, trusted_keys=[keys.public_path], retention_days=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app(settings), packages


def fill(app: Any, client: Any, packages: list[Path], args: argparse.Namespace) -> None:
    from sqlalchemy import insert, text, update

    from liteship.fleet import models
    from liteship.fleet.models import Device, Revert, Rollout, TelemetryWindow

    before = not hasattr(models, "TelemetryHour")  # PYTHONPATH names a liteship without the sums (main)
    HOUR_S = 3600.0
    HOUR_BINS = [f"c{i:02d}" for i in range(20)]

    admin = {"Authorization": f"Bearer {ADMIN}"}
    for i, path in enumerate(packages):
        params = {"channel": "stable"} if i == 0 else None
        client.post(
            "/api/v1/releases", content=path.read_bytes(), headers=admin, params=params
        ).raise_for_status()
    for i in range(args.devices):
        body = {"device_id": f"h-{i:05d}", "enrollment_token": ENROLL, "model_id": MODEL_ID}
        client.post("/api/v1/devices/register", json=body).raise_for_status()
    body = {"model_id": MODEL_ID, "candidate_version": "1.1.0", "stages": [50, 100]}
    client.post("/api/v1/rollouts", json=body, headers=admin).raise_for_status()
    now = time.time()
    rng = np.random.default_rng(0)
    windows, hours = [], {}
    for n in range(args.windows):
        ended = now - float(rng.uniform(0, args.days * DAY))
        version = ("1.0.0", "1.1.0")[n % 2]
        conf = [int(c) for c in rng.multinomial(60, [0.05] * 20)]
        windows.append(
            {
                "device_id": f"h-{n % args.devices:05d}", "window_id": f"w{n}", "model_id": MODEL_ID,
                "model_version": version, "started": ended - 60, "ended": ended, "inferences": 60, "errors": 0,
                "rollbacks": 0, "out_of_range_fraction": 0.0, "confidence_hist": conf,
                "latency_hist": [0, 60, 0], "latency_edges_ms": [1.0, 5.0], "dropped_windows": 0,
                "received_at": ended, "assigned": True,
            }
        )  # fmt: skip
        key = (version, (ended // HOUR_S) * HOUR_S)  # what crud.add_to_hour does on arrival
        acc = hours.setdefault(key, [0] * 21)
        acc[0] += 1
        for i, c in enumerate(conf):
            acc[1 + i] += c
    rows = [
        {"model_id": MODEL_ID, "model_version": v, "hour": h, "windows": a[0], "skipped": 0,
         **dict(zip(HOUR_BINS, a[1:], strict=True))}
        for (v, h), a in hours.items()
    ]  # fmt: skip
    with app.state.engine.begin() as conn:
        conn.execute(update(Rollout).values(created_at=now - DAY))
        for start in range(0, len(windows), 20_000):
            conn.execute(insert(TelemetryWindow), windows[start : start + 20_000])
        if not before:
            conn.execute(insert(models.TelemetryHour), rows)
        for start in range(0, args.reverts, 50_000):
            conn.execute(
                insert(Revert),
                [
                    {"device_id": f"h-{n % args.devices:05d}", "model_id": MODEL_ID, "version": "1.0.0",
                     "to_version": None, "reason": "bench", "by_server": False, "at": now - n * 2.0,
                     "received_at": now - n * 2.0}
                    for n in range(start, min(start + 50_000, args.reverts))
                ],
            )  # fmt: skip
        conn.execute(update(Device).values(model_version="1.0.0"))
        if not before:
            conn.execute(  # what the server counts as it stores each revert (checkin.insert_reverts)
                text(
                    "UPDATE devices SET own_reverts = (SELECT count(*) FROM reverts "
                    "WHERE reverts.device_id = devices.id AND NOT reverts.by_server)"
                )
            )


def timed(fn: Any, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=100_000)
    parser.add_argument("--reverts", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite in a temporary folder).")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("PYTHONPATH"):  # PYTHONPATH=/path/to/other/src measures that code (before/after)
        sys.path.insert(0, str(ROOT / "src"))
    from fastapi.testclient import TestClient

    from liteship.fleet import aggregate

    with tempfile.TemporaryDirectory() as tmp:
        app, packages = build_app(Path(tmp), args.db)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        with TestClient(app) as client:
            t = time.perf_counter()
            fill(app, client, packages, args)
            filled_s = time.perf_counter() - t

            before = "rescan" not in aggregate.drift_series.__code__.co_varnames

            def rescan() -> None:
                with app.state.sessionmaker() as session:
                    if before:  # the old code always rescans
                        aggregate.drift_series(session, model_id=MODEL_ID)
                    else:
                        aggregate.drift_series(session, model_id=MODEL_ID, rescan=True)

            def get(path: str, **params: Any) -> Any:
                def call() -> None:
                    r = client.get(path, headers=admin, params=params)
                    assert r.status_code == 200, r.text

                return call

            same = None
            if not before:
                with app.state.sessionmaker() as session:
                    same = aggregate.drift_series(session, model_id=MODEL_ID) == aggregate.drift_series(
                        session, model_id=MODEL_ID, rescan=True
                    )
            results = {
                "drift (rescan)": timed(rescan, args.repeat),
                "GET /api/v1/drift": timed(get("/api/v1/drift", model_id=MODEL_ID), args.repeat),
                "GET /dashboard": timed(get("/dashboard"), args.repeat),
            }
        app.state.engine.dispose()
    out = {
        "windows": args.windows, "reverts": args.reverts, "devices": args.devices, "days": args.days,
        "database": "postgresql" if args.db else "sqlite", "fill_s": round(filled_s, 1),
        "code": "before (no hourly sums)" if before else "hourly sums", "drift_equal_to_rescan": same,
        "results": results,
    }  # fmt: skip
    print(json.dumps(out, indent=2))
    if args.table:
        for name, r in results.items():
            print(f"| {name} | {r['median_ms']} | {r['max_ms']} |")


if __name__ == "__main__":
    main()
