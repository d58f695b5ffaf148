"""Issue 11 / 12.1 server side: the device profile is stored and shown (API, CLI, dashboard), devices
group and filter by profile, health and own reverts are shown; small fleets are told what each stage
puts on each arm and can ask for a minimum per arm, so no rollout waits silently forever."""

from __future__ import annotations

import json
import time

import numpy as np

from liteship.fleet import crud, rollout
from liteship.fleet.crud import device_bucket

from .conftest import ADMIN
from .test_rollouts import conf_hist, window

PI = {
    "machine": "aarch64",
    "cpu_model": "Cortex-A76",
    "cores": 4,
    "isa": ["neon", "dotprod"],
    "memory_mb": 8000,
    "os": "Linux-6.6",
    "python": "3.11.7",
    "litert": "2.3.0",
    "liteship": "0.1.0",
    "accelerators": ["cpu"],
    "accelerator": "cpu",
}
PC = {**PI, "machine": "x86_64", "cpu_model": "AMD EPYC", "isa": ["avx2"], "cores": 2}


def checkin(fleet, dev, headers, **body):
    r = fleet.client.post(
        f"/api/v1/devices/{dev}/checkin", json={"model_id": "digits", **body}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_profile_is_stored_shown_filtered_and_grouped(fleet, make_package):
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    devs = {f"pf-{i}": fleet.register(f"pf-{i}") for i in range(3)}
    health = {
        "pending": {"version": "1.0.0", "inferences": 42, "elapsed_s": 12.5},
        "failed_versions": ["0.9.0"],
        "events": [
            {
                "event": "reverted",
                "version": "0.9.0",
                "to": "1.0.0",
                "reason": "smoke",
                "at": time.time(),
                "by": "device",
            },
            {
                "event": "reverted",
                "version": "0.8.0",
                "to": "1.0.0",
                "reason": "x",
                "at": time.time(),
                "by": "server",
            },
        ],
    }
    checkin(fleet, "pf-0", devs["pf-0"], model_version="1.0.0", runtime=PI, health=health)
    checkin(fleet, "pf-1", devs["pf-1"], model_version="1.0.0", runtime=PC)
    checkin(fleet, "pf-2", devs["pf-2"], model_version="1.0.0", runtime={**PI, "cpu_model": "Cortex-A72"})
    rows = {d["id"]: d for d in fleet.client.get("/api/v1/devices", headers=fleet.admin).json()}
    assert rows["pf-0"]["runtime"] == PI
    assert rows["pf-0"]["profile_summary"].startswith(
        "aarch64 · Cortex-A76 · 4 cores · 8000 MB · neon/dotprod"
    )
    assert "health window on 1.0.0: 42 inferences, 12 s" in rows["pf-0"]["health_summary"]
    assert "refuses 0.9.0" in rows["pf-0"]["health_summary"]
    assert rows["pf-0"]["reverts"] == 1 and "1 device revert" in rows["pf-0"]["health_summary"]
    # ?profile.KEY=VALUE: all must hold; list fields match an item
    get = lambda **q: sorted(  # noqa: E731
        d["id"] for d in fleet.client.get("/api/v1/devices", params=q, headers=fleet.admin).json()
    )
    assert get(**{"profile.machine": "aarch64"}) == ["pf-0", "pf-2"]
    assert get(**{"profile.machine": "aarch64", "profile.cpu_model": "cortex-a72"}) == ["pf-2"]
    assert get(**{"profile.isa": "avx2"}) == ["pf-1"]
    assert get(**{"profile.isa": "avx512_vnni"}) == []
    r = fleet.client.get("/api/v1/devices", params={"profile." + "k" * 70: "x"}, headers=fleet.admin)
    assert r.status_code == 422 and "profile filters" in r.text
    with fleet.app.state.sessionmaker() as s:  # the function the jobs helper targets devices with
        assert [d.id for d in crud.devices_matching(s, profile={"machine": "x86_64"})] == ["pf-1"]
    page = fleet.client.get("/dashboard", headers=fleet.admin).text
    assert "aarch64 · Cortex-A76" in page and "health window on 1.0.0" in page and "refuses 0.9.0" in page


def test_fleet_devices_cli_shows_profile_and_groups(live_server, cli):
    import httpx

    from .conftest import ENROLL

    with httpx.Client(base_url=live_server.url) as c:
        for i, profile in enumerate((PI, PC, PI)):
            token = c.post(
                "/api/v1/devices/register", json={"device_id": f"c-{i}", "enrollment_token": ENROLL}
            ).json()["token"]
            c.post(
                f"/api/v1/devices/c-{i}/checkin",
                json={"runtime": profile},
                headers={"Authorization": f"Bearer {token}"},
            )
    env = {"LITESHIP_SERVER": live_server.url, "LITESHIP_TOKEN": ADMIN, "COLUMNS": "250"}
    r = cli("fleet", "devices", env=env)
    assert r.returncode == 0, r.stderr
    assert "Cortex-A76" in r.stdout and "AMD EPYC" in r.stdout and "not reported" in r.stdout
    r = cli("fleet", "devices", "--group-by", "cpu_model", "--json", env=env)
    groups = json.loads(r.stdout)["groups"]
    assert {k: sorted(d["id"] for d in v) for k, v in groups.items()} == {
        "Cortex-A76": ["c-0", "c-2"],
        "AMD EPYC": ["c-1"],
    }
    r = cli("fleet", "devices", "--profile", "machine=x86_64", "--json", env=env)
    assert [d["id"] for d in json.loads(r.stdout)] == ["c-1"]
    r = cli("fleet", "devices", "--profile", "oops", env=env)
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr


def test_stage_plan_counts_devices_per_arm():
    buckets = [300, 1600, 2000, 4000, 6000, 8000]
    plans = rollout.stage_plans(buckets, [2, 15, 100], min_devices=2, min_arm_devices=0)
    assert [(p.candidate_devices, p.control_devices, p.can_decide) for p in plans] == [
        (0, 6, False),
        (1, 5, False),
        (6, 0, True),
    ]
    plans = rollout.stage_plans(buckets, [2, 15, 100], min_devices=2, min_arm_devices=2)
    assert [(p.candidate_devices, p.control_devices) for p in plans] == [(2, 4), (2, 4), (6, 0)]
    assert all(p.can_decide for p in plans)
    # the percent alone would put every low bucket on the candidate: 2 stay on the control
    assert rollout.bucket_cutoff([10, 20, 30, 40, 5000], 2, 2) == 40
    assert rollout.bucket_cutoff([], 2, 5) == 200 and rollout.bucket_cutoff([5], 100, 5) == 10_000


def test_three_devices_get_both_arms_and_advice_that_works():
    """Issue 22 (5): min_arm_devices 10 on 3 devices put all 3 on the candidate and none on the control,
    and the warning repeated the same advice. Now both arms get devices, and the advice names settings
    under which every stage can decide."""
    buckets = [700, 4200, 9100]
    plans = rollout.stage_plans(buckets, [2, 15, 100], min_devices=10, min_arm_devices=10)
    assert [(p.candidate_devices, p.control_devices) for p in plans] == [(1, 2), (1, 2), (3, 0)]
    for n in (2, 3, 5, 19):  # both arms get devices whenever there are two
        b = list(range(100, 100 + 37 * n, 37))
        for m in (1, 10, 100):
            cand = sum(x < rollout.bucket_cutoff(b, 2, m) for x in b)
            assert 1 <= cand <= n - 1, (n, m, cand)
    warnings = rollout.plan_warnings(plans, min_devices=10, n_devices=3)
    assert "`--min-arm-devices 1 --threshold min_devices=1`" in warnings[1], warnings
    plans = rollout.stage_plans(buckets, [2, 15, 100], min_devices=1, min_arm_devices=1)  # the advice
    assert all(p.can_decide for p in plans) and plans[0].control_devices >= 1
    assert "register at least 2" in rollout.small_fleet_advice(10, 1)
    assert "`--min-arm-devices 10`" in rollout.small_fleet_advice(10, 25)


def test_small_fleet_is_told_and_can_decide(fleet, make_package):
    """Six devices, default stages: stage 1 has no candidate and says so; with min_arm_devices the
    same fleet reaches a decision at every stage."""
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    assert fleet.publish(make_package("digits", "1.1.0")).status_code == 201
    ids = sorted((f"sm-{i}" for i in range(40)), key=device_bucket)[10:16]  # none below bucket 200
    assert all(device_bucket(d) >= 200 for d in ids)
    devs = {d: fleet.register(d) for d in ids}
    r = fleet.rollout("1.1.0", stages=[2, 15, 100])
    assert r.status_code == 201
    body = r.json()
    assert body["plan"][0]["candidate_devices"] == 0 and not body["plan"][0]["can_decide"]
    assert "never decided automatically" in body["warnings"][0] and "min_arm_devices=2" in body["warnings"][1]
    assert body["next"]["action"] == "wait" and body["next"]["numbers"]["waiting_for"]
    assert fleet.client.post(f"/api/v1/rollouts/{body['id']}/abort", headers=fleet.admin).status_code == 200

    r = fleet.rollout("1.1.0", stages=[2, 15, 100], min_arm_devices=2)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["warnings"] == [] and body["plan"][0]["candidate_devices"] == 2
    rng = np.random.default_rng(3)
    for _ in range(4):
        for dev, headers in devs.items():
            a = checkin(fleet, dev, headers)
            checkin(fleet, dev, headers, model_version=a["version"])
            hist = conf_hist(rng, 150, 8, 2)
            w = window(a["version"], hist)
            assert fleet.client.post(f"/api/v1/devices/{dev}/telemetry", json=w, headers=headers).json()[
                "counted"
            ]
    r = fleet.client.get(f"/api/v1/rollouts/{body['id']}", headers=fleet.admin).json()
    assert r["state"] == "promoted", [(d["action"], d["reasons"]) for d in r["decisions"]]
    assert [d["action"] for d in r["decisions"] if d["action"] != "wait"] == ["advance", "advance", "promote"]


def test_rollout_start_cli_prints_the_stage_plan_and_warns(live_server, cli, make_package):
    import httpx

    from .conftest import ENROLL

    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        for v in ("1.0.0", "1.1.0"):
            assert (
                c.post(
                    "/api/v1/releases", content=make_package("digits", v).read_bytes(), headers=admin
                ).status_code
                == 201
            )
        for i in range(4):
            body = {"device_id": f"tiny-{i}", "enrollment_token": ENROLL, "model_id": "digits"}
            assert c.post("/api/v1/devices/register", json=body).status_code == 201
    env = {"LITESHIP_SERVER": live_server.url, "LITESHIP_TOKEN": ADMIN, "COLUMNS": "200"}
    r = cli("fleet", "rollout", "start", "digits", "1.1.0", env=env)
    assert r.returncode == 0, r.stderr
    assert "candidate devices" in r.stdout and "can decide" in r.stdout
    assert (
        "warning:" in r.stdout
        and "--min-arm-devices" in r.stdout
        and "never decided automatically" in r.stdout
    )
    assert "next: wait" in r.stdout
    rid = httpx.get(live_server.url + "/api/v1/rollouts", headers=admin).json()[0]["id"]
    assert cli("fleet", "abort", str(rid), env=env).returncode == 0
    r = cli("fleet", "rollout", "start", "digits", "1.1.0", "--min-arm-devices", "2", "--json", env=env)
    body = json.loads(r.stdout)
    assert body["min_arm_devices"] == 2 and body["warnings"] == []
    assert [(p["candidate_devices"], p["control_devices"]) for p in body["plan"]] == [(2, 2), (2, 2), (4, 0)]
