"""Issue 24 end to end: a real fleet server and four real agents whose reported profiles differ
(``$LITESHIP_AGENT_PROFILE``). One release with two variants: each agent installs the variant for its
hardware. A per-group rollout (``halt_scope=group``) of a release whose int8-dotprod variant is bad
(NaN on real frames: the agent reverts it) halts that group alone, while the float group advances and
promotes; the halted group stays on the control. A server that hands a device another variant than it
names, or another model's package, is refused and the device keeps its model.

Four agents, not three: the engine compares candidate and control *within* a group, so each of the two
groups needs a device on each arm.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import agent_e2e_conftest as e2e
import httpx
import pytest
from agent_e2e_conftest import ADMIN, agent_cmd, wait_for
from agent_test_helpers import blowup_model, build

from liteship.agent.client import DeviceClient
from liteship.agent.clock import Clock
from liteship.agent.profile import PROFILE_ENV
from liteship.agent.store import Store
from liteship.agent.updater import LOCAL_TIME_ENV, Updater
from liteship.fleet.crud import device_bucket
from liteship.package import Variant, parse_when

PI4 = {"machine": "aarch64", "isa": ["neon"], "cpu_model": "Cortex-A72"}
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"], "cpu_model": "Cortex-A76"}
X86 = {"machine": "x86_64", "isa": ["sse4_2", "avx2"], "cpu_model": "gateway"}
FLOAT = Variant("float", default=True)
DOT = Variant("int8-dotprod", when=(parse_when("machine=aarch64,isa=dotprod"),))
MODEL = "vv"
THRESHOLDS = {  # decide on reverts alone: the float variants are the same model on both arms
    "min_devices": 1,
    "min_predictions": 0,
    "alpha": 0.0,
    "psi_max": 1e12,
    "latency_p95_ratio_max": 1e12,
}


@pytest.fixture(scope="module")
def slow_fleet(tmp_path_factory, keys):
    """The real server, deciding rollouts only when asked (``evaluate``), so the test sets the pace."""
    code = e2e.SERVER_CODE
    e2e.SERVER_CODE = code.replace(
        "trusted_keys=[sys.argv[2]]", "trusted_keys=[sys.argv[2]], decision_interval_s=3600"
    )
    f = e2e.Fleet(tmp_path_factory.mktemp("fleet-variants"), keys.public_path)
    try:
        f.start()
    finally:
        e2e.SERVER_CODE = code
    yield f
    f.stop()


@pytest.fixture
def enrolled(slow_fleet, keys, tmp_path, cli):
    """``enrolled(device_id, model_id)`` → state folder of a device enrolled on ``slow_fleet`` (real CLI)."""

    def enroll(device_id: str, model_id: str):
        state = tmp_path / device_id
        r = cli(
            "agent", "enroll", "--state-dir", str(state), "--server", slow_fleet.url,
            "--enrollment-token", e2e.ENROLL, "--device-id", device_id, "--model-id", model_id,
            "--key", keys.public_path, "--json",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return state

    return enroll


@pytest.fixture(scope="module")
def pkgs(tflite_float, keys, golden, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("variant-e2e")
    good = tflite_float.read_bytes()
    bad = blowup_model(good, golden, digits[2][:40] * 255.0)

    def make(model_id, version, variant, model=good):
        return build(
            model,
            out / f"{model_id}-{version}-{variant.name}",
            version,
            keys.private_path,
            golden,
            model_id=model_id,
            variant=variant,
        )

    return {
        "1.0.0": [make(MODEL, "1.0.0", FLOAT), make(MODEL, "1.0.0", DOT)],
        "1.1.0": [make(MODEL, "1.1.0", FLOAT), make(MODEL, "1.1.0", DOT, bad)],
        "foreign": make("other", "1.1.0", FLOAT),
        "plain": lambda model_id, version: build(
            good, out / f"{model_id}-{version}", version, keys.private_path, golden, model_id=model_id
        ),
    }


def ids_split_by_bucket() -> dict[str, str]:
    """Device ids such that the two lowest buckets (the candidate arm at stage 1 with
    ``min_arm_devices=2``) are one device of each group."""
    names: dict[str, str] = {}
    for prefix in ("pi4", "x86", "pi5a", "pi5b"):
        names[prefix] = f"vv-{prefix}"
    for k in range(10_000):
        cand = {p: f"vv-{p}-{k}" for p in names}
        order = sorted(cand, key=lambda p: device_bucket(cand[p]))
        groups = {"pi4": "float", "x86": "float", "pi5a": "dot", "pi5b": "dot"}
        if {groups[order[0]], groups[order[1]]} == {"float", "dot"}:
            return cand
    raise AssertionError("no split found")


def slot(state):
    s = Store(state)
    current = s.current_version()
    if current is None or json.loads((state / "state.json").read_text()).get("pending") is not None:
        return None
    return current, (s.manifest(current).variant or {}).get("name")


def _downloads(fleet, at_least):
    rows = admin(fleet, "GET", f"/api/v1/models/{MODEL}/downloads")
    return rows if sum(t["downloads"] for t in rows) >= at_least else None


def admin(fleet, method, path, body=None):
    r = httpx.request(
        method, f"{fleet.url}{path}", json=body, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_variants_per_device_and_a_per_group_rollout(
    slow_fleet, enrolled, pkgs, digit_pngs, tmp_path, monkeypatch
):
    fleet = slow_fleet
    for p in pkgs["1.0.0"]:
        fleet.publish(p)
    ids = ids_split_by_bucket()
    profiles = {"pi4": PI4, "x86": X86, "pi5a": PI5, "pi5b": PI5}
    states, agents = {}, {}
    try:
        for kind, device_id in ids.items():
            monkeypatch.setenv(PROFILE_ENV, json.dumps(profiles[kind]))
            states[kind] = enrolled(device_id, MODEL)
            args = agent_cmd(states[kind], digit_pngs, "--window", "0.3", "--health-inferences", "10")
            agents[kind] = subprocess.Popen(
                [*args, "--sink", "stdout"],
                stdout=subprocess.DEVNULL,
                stderr=open(states[kind] / "agent.log", "ab"),  # noqa: SIM115 (the child holds it)
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", PROFILE_ENV: json.dumps(profiles[kind])},
            )
        # each agent installs the variant its hardware selects
        expected = {"pi4": "float", "x86": "float", "pi5a": "int8-dotprod", "pi5b": "int8-dotprod"}
        for kind, variant in expected.items():
            assert wait_for(lambda k=kind: slot(states[k]), timeout=90) == ("1.0.0", variant)
        wait_for(lambda: all(d["variant"] for d in fleet.devices() if d["id"] in ids.values()))
        # bandwidth: each device downloaded its own variant, once, and nothing else
        first = wait_for(lambda: _downloads(fleet, 4), timeout=30)
        assert {t["target"]: (t["devices"], t["downloads"]) for t in first} == {
            f"{MODEL}/1.0.0/{MODEL}-1.0.0.float.lsp": (2, 2),
            f"{MODEL}/1.0.0/{MODEL}-1.0.0.int8-dotprod.lsp": (2, 2),
        }
        assert all(t["bytes_per_device"] == t["size"] for t in first)

        # a release whose int8-dotprod variant is bad; each group decides alone
        for p in pkgs["1.1.0"]:
            fleet.publish(p)
        rollout = admin(
            fleet,
            "POST",
            "/api/v1/rollouts",
            {
                "model_id": MODEL,
                "candidate_version": "1.1.0",
                "stages": [50, 100],
                "min_arm_devices": 2,
                "halt_scope": "group",
                "thresholds": THRESHOLDS,
            },
        )
        rid = rollout["id"]
        order = sorted(ids, key=lambda k: device_bucket(ids[k]))
        cand = {k for k in order[:2]}
        float_cand = next(k for k in cand if k in ("pi4", "x86"))
        dot_cand = next(k for k in cand if k.startswith("pi5"))
        float_ctrl = next(k for k in ("pi4", "x86") if k != float_cand)
        wait_for(lambda: slot(states[float_cand]) == ("1.1.0", "float"), timeout=60)
        wait_for(
            lambda: "1.1.0" in json.loads((states[dot_cand] / "state.json").read_text()).get("failed", {}),
            timeout=60,
        )
        wait_for(
            lambda: any(d["id"] == ids[dot_cand] and d["reverts"] >= 1 for d in fleet.devices()), timeout=30
        )

        def decided(action):
            admin(fleet, "POST", f"/api/v1/rollouts/{rid}/evaluate")
            r = admin(fleet, "GET", f"/api/v1/rollouts/{rid}")
            return r if any(d["action"] == action for d in r["decisions"]) else None

        r = wait_for(lambda: decided("halt-group"), timeout=30, every=0.5)
        assert r["halted_groups"] == ["int8-dotprod"] and r["state"] == "running"
        r = wait_for(lambda: decided("advance"), timeout=30, every=0.5)
        # 100 %: the float control moves to the candidate's float variant; the halted group does not move
        wait_for(lambda: slot(states[float_ctrl]) == ("1.1.0", "float"), timeout=60)
        r = wait_for(lambda: decided("promote"), timeout=30, every=0.5)
        assert r["state"] == "promoted" and r["halted_groups"] == ["int8-dotprod"]
        for kind in ("pi4", "x86"):
            assert slot(states[kind]) == ("1.1.0", "float")
        for kind in ("pi5a", "pi5b"):
            assert slot(states[kind]) == ("1.0.0", "int8-dotprod")
        listing = {d["id"]: d for d in fleet.devices()}
        for kind in ("pi5a", "pi5b"):
            assert listing[ids[kind]]["assigned_version"] == "1.0.0"
            assert listing[ids[kind]]["assigned_variant"] == "int8-dotprod"
        assert listing[ids["pi4"]]["assigned_variant"] == "float"
        # the reverted Pi 5 went back to its kept 1.0.0 slot: 1.0.0 was not downloaded again
        moved = {t["target"]: t for t in _downloads(fleet, 0)}
        assert moved[f"{MODEL}/1.0.0/{MODEL}-1.0.0.int8-dotprod.lsp"]["downloads"] == 2
        assert moved[f"{MODEL}/1.1.0/{MODEL}-1.1.0.float.lsp"]["devices"] == 2
    finally:
        for p in agents.values():
            p.send_signal(signal.SIGTERM)
        for p in agents.values():
            p.wait(timeout=30)


def test_another_variant_or_a_foreign_package_is_refused_and_the_model_kept(
    slow_fleet, enrolled, pkgs, keys, monkeypatch
):
    fleet = slow_fleet
    releases = {
        r["version"] for m in admin(fleet, "GET", "/api/v1/models") if m["id"] == MODEL for r in m["releases"]
    }
    for version in ("1.0.0", "1.1.0"):
        if version not in releases:
            for p in pkgs[version]:
                fleet.publish(p)
    foreign = fleet.publish(pkgs["foreign"])
    monkeypatch.setenv(PROFILE_ENV, json.dumps(PI5))
    state = enrolled("vv-forged", MODEL)
    dev = json.loads((state / "device.json").read_text())
    store = Store(state, keys.public_path)
    client = DeviceClient(fleet.url, dev["device_id"], dev["token"])
    updater = Updater(store, client, Clock(state / "clock.json"))
    first = updater.poll_once()
    assert first["action"] == "installed", first
    store.commit()
    before = slot(state)
    assert before == ("1.0.0", "int8-dotprod")
    newer = admin(fleet, "GET", f"/api/v1/models/{MODEL}/releases/1.1.0")
    float_110 = next(v for v in newer["variants"] if v["name"] == "float")
    # the server lies: it names int8-dotprod but points at the float package, or at another model's
    lie = {"model_id": MODEL, "version": "1.1.0", "variant": "int8-dotprod", "reason": "forged"}
    for target, code in ((float_110, "variant"), (foreign, "mismatch")):
        forged = {
            **lie,
            "target_path": target["target_path"],
            "sha256": target["sha256"],
            "size": target["size"],
        }
        out = updater.apply(forged)
        assert (out["action"], out["code"]) == ("refused", code), out
        assert slot(state) == before  # the current model stays


def test_a_tagged_device_updates_only_inside_its_cohorts_window(slow_fleet, enrolled, pkgs, digit_pngs, cli):
    """A real agent enrolled with ``--tag``: outside its cohort's window (clock hook) it keeps its model
    and says why; inside, it installs."""
    fleet = slow_fleet
    model = "win"
    fleet.publish(build_plain(pkgs, model, "1.0.0"))
    state = enrolled("win-1", model)  # enrolled without tags; the operator tags it
    env = {"LITESHIP_SERVER": fleet.url, "LITESHIP_TOKEN": ADMIN}
    assert cli("fleet", "tag", "win-1", "--add", "site=berlin", env=env).returncode == 0
    assert cli("fleet", "windows", "site=berlin", "02:00-03:00", env=env).returncode == 0
    # a device with no model yet waits for its window too: start inside it
    agent = start(state, digit_pngs, "02:30")
    try:
        wait_for(lambda: slot(state) == ("1.0.0", None), timeout=90)
    finally:
        stop(agent)
    # a newer stable release, outside the window: deferred, the model stays
    fleet_models = admin(fleet, "GET", "/api/v1/models")
    assert any(m["id"] == model for m in fleet_models)
    httpx.post(  # 1.2.0 becomes stable
        f"{fleet.url}/api/v1/releases",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=60,
        params={"channel": "stable"},
        content=build_plain(pkgs, model, "1.2.0").read_bytes(),
    ).raise_for_status()
    agent = start(state, digit_pngs, "12:00")
    try:
        decision = wait_for(lambda: _decision(state, "deferred"), timeout=60)
        assert decision["code"] == "update-window" and "02:00-03:00" in decision["reason"]
        assert slot(state) == ("1.0.0", None)
    finally:
        stop(agent)
    agent = start(state, digit_pngs, "02:59")
    try:
        wait_for(lambda: slot(state) == ("1.2.0", None), timeout=60)
    finally:
        stop(agent)


def build_plain(pkgs, model_id, version):
    return pkgs["plain"](model_id, version)


def _decision(state, action):
    d = json.loads((state / "state.json").read_text()).get("last_decision") or {}
    return d if d.get("action") == action else None


def start(state, frames, local_time):
    args = agent_cmd(state, frames, "--window", "0.3", "--health-inferences", "10")
    return subprocess.Popen(
        [*args, "--sink", "stdout"],
        stdout=subprocess.DEVNULL,
        stderr=open(state / "agent.log", "ab"),  # noqa: SIM115 (the child holds it)
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", LOCAL_TIME_ENV: local_time},
    )


def stop(agent):
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
