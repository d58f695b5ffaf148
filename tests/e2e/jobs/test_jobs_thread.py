"""Issue 21 item 4: a long device job never starves check-ins. The job runs on the agent's own jobs
thread; the updater keeps checking in (and would install or revert) on its poll interval meanwhile.

A real server, a real agent process (poll interval 0.3 s), a bench job of ≥ 10 s (a test-only runner
adds 100 ms to each run). Before the fix the job ran on the updater thread: no check-in for its whole
duration.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from agent_e2e_conftest import ADMIN, wait_for
from agent_test_helpers import build
from jobs_e2e_helpers import enroll, journal_state, lines, start, stop

from liteship.agent.jobs import TEST_DELAY_ENV
from liteship.agent.store import Store

MODEL = "threaded"


def _checkins(log: Path, since: float) -> list[float]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("msg") == "check-in" and doc.get("ts", 0) >= since:
            out.append(float(doc["ts"]))
    return out


def test_long_job_does_not_stop_check_ins(fleet, keys, golden, tflite_float, digit_pngs, tmp_path):
    fleet.publish(
        build(tflite_float.read_bytes(), tmp_path, "1.0.0", keys.private_path, golden, model_id=MODEL)
    )
    state = enroll(fleet, keys, tmp_path / "t", "jobs-thread", MODEL)
    sink = tmp_path / "t.jsonl"
    proc = start(state, digit_pngs, sink, env={TEST_DELAY_ENV: "slow.tflite=100"})
    try:
        wait_for(lambda: Store(state).current_version() == "1.0.0" and lines(sink) > 0, timeout=120)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        sha = httpx.post(
            f"{fleet.url}/api/v1/bench/variants", content=tflite_float.read_bytes(), headers=admin
        ).json()["sha256"]
        body = {
            "variants": [{"name": "slow.tflite", "sha256": sha}],
            "devices": ["jobs-thread"],
            "runs": 60,
            "warmup": 1,
            "min_seconds": 0.0,
        }
        job = httpx.post(f"{fleet.url}/api/v1/bench/jobs", json=body, headers=admin, timeout=30).json()
        wait_for(lambda: any((state / "bench" / "files").glob("*/*.tflite")), timeout=60)
        started = time.time()
        served = lines(sink)
        wait_for(lambda: journal_state(state) != "running", timeout=180, every=0.2)
        ended = time.time()
        assert ended - started >= 6.0, "the job must be long for this test to mean anything"
        stamps = [started, *_checkins(state / "agent.log", started), ended]
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        print(f"job {ended - started:.1f} s, {len(stamps) - 2} check-ins, longest gap {max(gaps):.2f} s")
        # poll interval 0.3 s (±20 % jitter): a gap of seconds means the job held the updater
        assert max(gaps) < 3.0, gaps
        assert len(stamps) - 2 >= (ended - started) / 1.5
        assert lines(sink) > served  # frames went on too (between bench steps)
        task = wait_for(
            lambda: next(
                (
                    t
                    for t in httpx.get(f"{fleet.url}/api/v1/bench/jobs/{job['id']}", headers=admin).json()[
                        "tasks"
                    ]
                    if t["state"] == "done"
                ),
                None,
            ),
            timeout=60,
        )
        assert task["results"][0]["ok"] and task["results"][0]["p50_ms"] >= 100.0
    finally:
        stop(proc)
