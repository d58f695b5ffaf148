"""A device job chosen by cohort tags, end to end (issue 24): the real server on loopback, two real agent
processes enrolled with different tags (`agent enroll --tag`), the real CLI. `fleet bench --tag
site=berlin` runs on the Berlin device only; the Paris device is never offered it."""

from __future__ import annotations

import json

import httpx
import pytest
from agent_e2e_conftest import ENROLL, wait_for
from agent_test_helpers import build
from jobs_e2e_helpers import admin_env, lines, start, stop

from liteship.agent.service import enroll
from liteship.agent.store import Store

MODEL = "tagjobs"
TAGS = {"tag-berlin": ["site=berlin", "ring=canary"], "tag-paris": ["site=paris"]}


@pytest.fixture(scope="module")
def agents(fleet, keys, golden, tflite_float, digit_pngs, tmp_path_factory):
    """Two enrolled agents serving model 1.0.0, one tagged site=berlin, the other site=paris."""
    out = tmp_path_factory.mktemp("pkg")
    fleet.publish(
        build(tflite_float.read_bytes(), out, "1.0.0", keys.private_path, golden, model_id=MODEL), "stable"
    )
    base = tmp_path_factory.mktemp("agents")
    procs = {}
    for dev, tags in TAGS.items():
        state = base / dev
        enroll(state, server=fleet.url, enrollment_token=ENROLL, device_id=dev, key=keys.public_path,
               model_id=MODEL, tags=tags)  # fmt: skip
        sink = base / f"{dev}.jsonl"
        procs[dev] = (state, sink, start(state, digit_pngs, sink))
    for state, sink, _ in procs.values():
        wait_for(lambda s=state, k=sink: Store(s).current_version() == "1.0.0" and lines(k) > 0, timeout=120)
    yield procs
    for _, _, proc in procs.values():
        stop(proc)


def test_a_bench_job_for_a_tag_runs_on_the_tagged_agent_only(fleet, agents, tflite_float, cli):
    r = cli("fleet", "bench", str(tflite_float), "--tag", "site=berlin", "--runs", "20", "--warmup", "2",
            "--min-seconds", "0.2", "--wait", "180", "--json", env=admin_env(fleet))  # fmt: skip
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["selector"] == {"tags": ["site=berlin"]}
    (task,) = job["tasks"]
    assert task["device_id"] == "tag-berlin" and task["state"] == "done", task
    (row,) = task["results"]
    assert row["ok"] and row["p50_ms"] > 0, row

    # the Paris agent, checking in all along, was never offered the job
    state, _, proc = agents["tag-paris"]
    token = json.loads((state / "device.json").read_text())["token"]
    own = httpx.get(
        f"{fleet.url}/api/v1/devices/tag-paris/bench", headers={"Authorization": f"Bearer {token}"}
    )
    assert own.status_code == 200 and own.json() == [], own.text

    # no device carries both tags: exit 1 naming them, nothing queued
    r = cli(
        "fleet",
        "bench",
        str(tflite_float),
        "--tag",
        "site=paris",
        "--tag",
        "ring=canary",
        env=admin_env(fleet),
    )
    assert r.returncode == 1 and "site=paris, ring=canary" in r.stderr and "Traceback" not in r.stderr, (
        r.stderr
    )
    for state, _, proc in agents.values():  # the live model was never replaced
        assert proc.poll() is None and Store(state).current_version() == "1.0.0"
