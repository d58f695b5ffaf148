"""The bench-job API on SQLite and PostgreSQL: devices chosen by id, hardware group or profile; the offer
at check-in; the variants as signed TUF targets (kept signed across a release); results; bad input."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tuf.api.metadata import Metadata

from .conftest import MODEL_FILE

PI = {"machine": "aarch64", "cpu_model": "Cortex-A76", "cores": 4, "isa": ["neon", "dotprod"]}
PC = {"machine": "x86_64", "cpu_model": "EPYC", "cores": 2, "isa": ["avx2"]}


def checkin(fleet, device_id, headers, runtime=None):
    body = {"model_id": "digits", "model_version": None, "runtime": runtime}
    r = fleet.client.post(f"/api/v1/devices/{device_id}/checkin", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def devices(fleet):
    heads = {d: fleet.register(d) for d in ("pi-1", "pi-2", "pc-1")}
    for d, h in heads.items():
        checkin(fleet, d, h, PI if d.startswith("pi") else PC)
    up = fleet.client.post("/api/v1/bench/variants", content=MODEL_FILE.read_bytes(), headers=fleet.admin)
    assert (
        up.status_code == 201 and up.json()["sha256"] == hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()
    )
    return heads, up.json()["sha256"]


def queue(fleet, sha, **choose):
    body = {"variants": [{"name": "q.tflite", "sha256": sha}], "runs": 5, **choose}
    return fleet.client.post("/api/v1/bench/jobs", json=body, headers=fleet.admin)


def test_profile_group_offer_target_and_results(fleet, devices, make_package):
    heads, sha = devices
    by_profile = queue(fleet, sha, profile={"machine": "aarch64", "isa": "dotprod"})
    assert by_profile.status_code == 201, by_profile.text
    job = by_profile.json()
    assert [t["device_id"] for t in job["tasks"]] == ["pi-1", "pi-2"] and job["tuf"] == "signed"
    by_group = queue(fleet, sha, group="x86_64+avx2").json()
    assert [t["device_id"] for t in by_group["tasks"]] == ["pc-1"]
    nobody = queue(fleet, sha, profile={"machine": "riscv64"})
    assert nobody.status_code == 404 and "aarch64+neon+dotprod" in nobody.json()["detail"]

    fleet.app.state.open_bench_tasks.invalidate()  # no wait for the 1 s cache in a test
    offers = checkin(fleet, "pi-1", heads["pi-1"])["jobs"]
    assert [o["job_id"] for o in offers] == [job["id"]] and offers[0]["runs"] == 5
    variant = offers[0]["variants"][0]
    assert variant["target_path"] == f"bench-jobs/{job['id']}/q.tflite" and variant["sha256"] == sha
    assert checkin(fleet, "pc-1", heads["pc-1"])["jobs"][0]["job_id"] == by_group["id"]

    # a release published afterwards re-signs the targets: the job's variant stays a signed target
    assert fleet.publish(make_package("digits", "1.0.0"), channel="stable").status_code == 201
    targets = Metadata.from_bytes(fleet.client.get("/tuf/metadata/timestamp.json").content)
    assert targets is not None
    tuf = fleet.app.state.tuf
    assert tuf.has_target(variant["target_path"], sha)
    body = fleet.client.get(f"/tuf/targets/bench-jobs/{job['id']}/{sha}.q.tflite")
    assert body.status_code == 200 and hashlib.sha256(body.content).hexdigest() == sha
    assert fleet.client.get(f"/tuf/targets/bench-jobs/{job['id']}/{'0' * 64}.q.tflite").status_code == 404
    assert fleet.client.get(f"/tuf/targets/bench-jobs/{job['id']}/..%2Fx").status_code in (400, 404)

    figures = {
        "name": "q.tflite",
        "ok": True,
        "threads": 1,
        "init_ms": 3.0,
        "p50_ms": 1.5,
        "p95_ms": 1.7,
        "p99_ms": 2.0,
        "runs": 50,
        "rss_delta_bytes": 1 << 20,
    }
    report = {"state": "done", "results": [figures], "profile": PI, "mode": {"mode": "between-frames"}}
    path = f"/api/v1/devices/pi-1/bench/{job['id']}"
    assert fleet.client.post(path, json=report, headers=heads["pi-1"]).status_code == 200
    again = {"state": "failed", "error": "late"}
    assert fleet.client.post(path, json=again, headers=heads["pi-1"]).json()["state"] == "done"  # first kept
    got = fleet.client.get(f"/api/v1/bench/jobs/{job['id']}", headers=fleet.admin).json()
    assert got["state"] == "open" and got["tasks"][0]["results"][0]["p50_ms"] == 1.5
    fleet.app.state.open_bench_tasks.invalidate()
    assert not checkin(fleet, "pi-1", heads["pi-1"]).get("jobs")  # done: no longer offered
    own = fleet.client.get("/api/v1/devices/pi-1/bench", headers=heads["pi-1"]).json()
    assert [t["state"] for t in own] == ["done"]
    # pi-2 has no task in the group job
    r = fleet.client.post(f"/api/v1/devices/pi-2/bench/{by_group['id']}", json=report, headers=heads["pi-2"])
    assert r.status_code == 404


def test_bad_jobs_get_clear_errors(fleet, devices):
    heads, sha = devices
    cases = [
        ({"devices": ["pi-1"], "group": "x"}, 400, "exactly one way"),
        ({}, 400, "exactly one way"),
        ({"devices": ["nobody"]}, 404, "no device 'nobody'"),
        ({"devices": ["pi-1"], "runs": 0}, 422, "runs"),
        ({"devices": ["pi-1"], "threads": 1000}, 422, "threads"),
    ]
    for choose, code, text in cases:
        r = queue(fleet, sha, **choose)
        assert r.status_code == code and text in r.text, (choose, r.status_code, r.text)
    body = {"variants": [{"name": "a.tflite", "sha256": "0" * 64}], "devices": ["pi-1"]}
    r = fleet.client.post("/api/v1/bench/jobs", json=body, headers=fleet.admin)
    assert r.status_code == 404 and "was not uploaded" in r.json()["detail"]
    body = {"variants": [{"name": "a.tflite", "sha256": sha}] * 2, "devices": ["pi-1"]}
    assert fleet.client.post("/api/v1/bench/jobs", json=body, headers=fleet.admin).status_code == 400
    body = {"variants": [{"name": "../etc", "sha256": sha}], "devices": ["pi-1"]}
    assert fleet.client.post("/api/v1/bench/jobs", json=body, headers=fleet.admin).status_code == 422
    assert fleet.client.post("/api/v1/bench/variants", content=b"", headers=fleet.admin).status_code == 400
    assert fleet.client.get("/api/v1/bench/jobs/job-0000000000000000", headers=fleet.admin).status_code == 404


report_values = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30), st.booleans()
)


_JOBS: dict[int, dict] = {}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    state=st.sampled_from(["done", "failed", "refused", "running", "bogus", ""]),
    figure=st.dictionaries(
        st.sampled_from(["name", "ok", "p50_ms", "p99_ms", "init_ms", "runs", "threads", "rss_delta_bytes"]),
        report_values,
    ),
    profile=st.one_of(st.none(), st.dictionaries(st.text(max_size=60), report_values, max_size=40)),
    error=st.one_of(st.none(), st.text(max_size=1200)),
)
def test_device_reports_are_bounded_never_5xx(fleet, devices, state, figure, profile, error):
    heads, sha = devices
    if id(fleet) not in _JOBS:  # one job per app: queueing re-signs the TUF targets, slow per example
        _JOBS[id(fleet)] = queue(fleet, sha, devices=["pi-2"]).json()
    job = _JOBS[id(fleet)]
    body = {"state": state, "results": [figure], "profile": profile, "error": error, "mode": profile}
    raw = json.dumps(body).encode()  # NaN and Infinity as Python writes them: a sloppy client does
    headers = {**heads["pi-2"], "content-type": "application/json"}
    r = fleet.client.post(f"/api/v1/devices/pi-2/bench/{job['id']}", content=raw, headers=headers)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        stored = r.json()
        for fig in stored["results"] or []:
            assert fig["p50_ms"] is None or 0 <= fig["p50_ms"] <= 3.6e6
        for key, value in (stored["profile"] or {}).items():
            assert len(key) <= 50 and (not isinstance(value, str) or len(value) <= 200)


def test_offline_targets_key_job_waits_for_its_signature(fleet, devices, tmp_path):
    """Without targets.pem on the server a job is queued but offered to no device before it is signed."""
    from liteship.fleet.jobs_client import BenchClient

    heads, _ = devices
    offline = tmp_path / "targets.pem"
    (fleet.app.state.tuf.keys_dir / "targets.pem").rename(offline)
    client = BenchClient("http://testserver", token=fleet.admin["Authorization"].split()[1])
    client._http = fleet.client  # the in-process app (as the fleet's own offline-key test does)
    client._http.headers.update(fleet.admin)
    job = client.queue([MODEL_FILE], devices=["pi-1"], runs=5)
    assert job["tuf"] == "pending-offline-signature"
    fleet.app.state.open_bench_tasks.invalidate()
    assert not checkin(fleet, "pi-1", heads["pi-1"]).get("jobs")  # unsigned: never offered
    job = client.queue([MODEL_FILE], devices=["pi-1"], runs=5, targets_key=offline)
    assert job["tuf"] == "signed"
    fleet.app.state.open_bench_tasks.invalidate()
    assert len(checkin(fleet, "pi-1", heads["pi-1"])["jobs"]) == 2  # both jobs' targets are signed now
