"""Device jobs chosen by cohort tags (issue 24): ``tags`` is a fourth way to choose a job's devices, with
the rule of a rollout's tags (the devices carrying all of them); no match is a clear 404 naming the tags.

The API on SQLite and PostgreSQL, and `liteship fleet bench/validate/profile --tag` against the real
server on loopback, with devices checking in over HTTP: only the tagged devices are offered the job."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from .conftest import ADMIN, ENROLL, MODEL_FILE

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
FLEET = {"berlin-1": ["site=berlin", "ring=canary"], "berlin-2": ["site=berlin"], "paris-1": ["site=paris"]}


def register(post, device_id, tags):
    body = {"device_id": device_id, "enrollment_token": ENROLL, "model_id": "digits", "tags": tags}
    r = post("/api/v1/devices/register", json=body)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def tagged(fleet):
    heads = {d: register(fleet.client.post, d, tags) for d, tags in FLEET.items()}
    up = fleet.client.post("/api/v1/bench/variants", content=MODEL_FILE.read_bytes(), headers=fleet.admin)
    assert up.status_code == 201, up.text
    return heads, up.json()["sha256"]


def queue(fleet, sha, **choose):
    body = {"variants": [{"name": "q.tflite", "sha256": sha}], "runs": 3, **choose}
    return fleet.client.post("/api/v1/bench/jobs", json=body, headers=fleet.admin)


def test_a_job_for_tags_takes_the_devices_carrying_all_of_them(fleet, tagged):
    heads, sha = tagged
    berlin = queue(fleet, sha, tags=["site=berlin"])
    assert berlin.status_code == 201, berlin.text
    assert [t["device_id"] for t in berlin.json()["tasks"]] == ["berlin-1", "berlin-2"]
    assert berlin.json()["selector"] == {"tags": ["site=berlin"]}
    both = queue(fleet, sha, tags=["site=berlin", "ring=canary"]).json()
    assert [t["device_id"] for t in both["tasks"]] == ["berlin-1"]

    # the same rule as a rollout's tags: the operator tags paris-1 into the canary ring, and it is taken
    r = fleet.client.patch("/api/v1/devices/paris-1", json={"add_tags": ["ring=canary"]}, headers=fleet.admin)
    assert r.status_code == 200, r.text
    canary = queue(fleet, sha, tags=["ring=canary"]).json()
    assert [t["device_id"] for t in canary["tasks"]] == ["berlin-1", "paris-1"]

    fleet.app.state.open_bench_tasks.invalidate()  # no wait for the 1 s cache in a test
    body = {"model_id": "digits", "model_version": None}
    offered = {
        d: [
            o["job_id"]
            for o in fleet.client.post(f"/api/v1/devices/{d}/checkin", json=body, headers=h)
            .json()
            .get("jobs")
            or []
        ]
        for d, h in heads.items()
    }
    assert offered == {
        "berlin-1": [berlin.json()["id"], both["id"], canary["id"]],
        "berlin-2": [berlin.json()["id"]],
        "paris-1": [canary["id"]],
    }


def test_bad_tag_selectors_are_clear_4xx(fleet, tagged):
    _, sha = tagged
    cases = [
        ({"tags": ["site=tokyo"]}, 404, "no registered device carries all the tags site=tokyo"),
        ({"tags": ["site=berlin", "site=paris"]}, 404, "site=berlin, site=paris"),
        ({"tags": ["site=berlin"], "devices": ["berlin-1"]}, 400, "exactly one way"),
        ({"tags": []}, 422, "tags"),
        ({"tags": ["Has Space"]}, 422, "tags"),
        ({"tags": [f"t{i}" for i in range(17)]}, 422, "tags"),
    ]
    for choose, code, text in cases:
        r = queue(fleet, sha, **choose)
        assert r.status_code == code and text in r.text, (choose, r.status_code, r.text)
    miss = queue(fleet, sha, tags=["site=tokyo"]).json()["detail"]
    assert "Tags now: ring=canary, site=berlin, site=paris" in miss, miss


def test_cli_jobs_reach_only_the_tagged_devices_over_http(live_server, cli, tmp_path):
    url = live_server.url
    heads = {
        d: register(lambda path, **kw: httpx.post(url + path, **kw), d, tags) for d, tags in FLEET.items()
    }
    env = {"LITESHIP_TOKEN": ADMIN, "LITESHIP_SERVER": url}
    r = cli("fleet", "bench", str(MODEL_FILE), "--tag", "site=berlin", "--runs", "2", "--json", env=env)
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert [t["device_id"] for t in job["tasks"]] == ["berlin-1", "berlin-2"]
    assert job["selector"] == {"tags": ["site=berlin"]}
    r = cli(
        "fleet", "profile", str(MODEL_FILE), "--tag", "ring=canary", "--tag", "site=berlin", "--json", env=env
    )
    assert r.returncode == 0, r.stderr
    profile_job = json.loads(r.stdout)
    assert [t["device_id"] for t in profile_job["tasks"]] == ["berlin-1"] and profile_job["kind"] == "profile"

    # each device checks in over HTTP: only the tagged ones are offered the jobs (the 1 s task cache)
    body = {"model_id": "digits", "model_version": None}
    offers: dict[str, list[str]] = {}
    for _ in range(40):
        offers = {
            d: [
                o["job_id"]
                for o in httpx.post(f"{url}/api/v1/devices/{d}/checkin", json=body, headers=h)
                .json()
                .get("jobs")
                or []
            ]
            for d, h in heads.items()
        }
        if offers["berlin-1"] == [job["id"], profile_job["id"]]:
            break
        time.sleep(0.1)
    assert offers == {
        "berlin-1": [job["id"], profile_job["id"]],
        "berlin-2": [job["id"]],
        "paris-1": [],
    }

    # a tagged device reports; the job's results carry its figures
    figures = {"name": MODEL_FILE.name, "ok": True, "threads": 1, "p50_ms": 1.5, "runs": 2}
    r = httpx.post(f"{url}/api/v1/devices/berlin-2/bench/{job['id']}", json={"state": "done", "results": [figures]},
                   headers=heads["berlin-2"])  # fmt: skip
    assert r.status_code == 200, r.text
    # paris-1 has no task in it
    r = httpx.post(f"{url}/api/v1/devices/paris-1/bench/{job['id']}", json={"state": "done", "results": [figures]},
                   headers=heads["paris-1"])  # fmt: skip
    assert r.status_code == 404

    # no device carries the tags: exit 1, one line naming them; two selectors: usage, exit 2
    r = cli("fleet", "bench", str(MODEL_FILE), "--tag", "site=tokyo", env=env)
    assert r.returncode == 1 and "site=tokyo" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli(
        "fleet",
        "validate",
        str(MODEL_FILE),
        "--data",
        str(MODEL_FILE),
        "--tag",
        "a",
        "--device",
        "b",
        env=env,
    )
    assert r.returncode == 2 and "exactly one of --device, --group, --profile, --tag" in r.stderr, r.stderr
