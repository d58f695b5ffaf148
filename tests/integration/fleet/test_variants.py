"""Multi-variant releases on the server (issue 24): publish the variants of one release, each a TUF
target; each device is assigned the variant its reported profile selects; listing shows it."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from liteship.package import Variant, build_package, parse_when

MODEL_FILE = (
    Path(__file__).resolve().parents[2] / "data" / "third_party" / "mobilenet_v1_0.25_224_quant.tflite"
)
PI4 = {"machine": "aarch64", "isa": ["neon"], "litert": "1.4.0"}
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"], "litert": "1.4.0"}
FLOAT = Variant("float", default=True)
DOT = Variant("int8-dotprod", when=(parse_when("machine=aarch64,isa=dotprod"),))


@pytest.fixture(scope="module")
def variant_pkg(keys, tmp_path_factory):
    """``variant_pkg(version, variant|None, key="good", model_id="digits")`` → a signed .lsp (cached)."""
    out = tmp_path_factory.mktemp("variant-packages")
    cache: dict[tuple, Path] = {}

    def make(version: str, variant: Variant | None, key: str = "good", model_id: str = "digits") -> Path:
        k = (version, variant, key, model_id)
        if k not in cache:
            info = build_package(
                MODEL_FILE,
                out / key / model_id,
                model_id=model_id,
                version=version,
                private_key=keys[key].private_path,
                golden_inputs=np.full((1, 224, 224, 3), 128, dtype=np.uint8),
                created="2025-01-01T00:00:00Z",
                variant=variant,
                description=f"{variant.name if variant else 'plain'} build",  # distinct bytes per variant
            )
            cache[k] = Path(info.path)
        return cache[k]

    return make


def checkin(fleet, device_id, headers, profile, version=None, variant=None):
    body = {"model_id": "digits", "model_version": version, "runtime": profile}
    if variant:
        body["model_variant"] = variant
    r = fleet.client.post(f"/api/v1/devices/{device_id}/checkin", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_each_device_gets_the_variant_its_profile_selects(fleet, variant_pkg):
    r = fleet.publish(variant_pkg("1.0.0", FLOAT))
    assert r.status_code == 201, r.text
    assert r.json()["variant"] == "float" and r.json()["target_path"] == "digits/1.0.0/digits-1.0.0.float.lsp"
    r = fleet.publish(variant_pkg("1.0.0", DOT))
    assert r.status_code == 201, r.text
    assert [v["name"] for v in r.json()["variants"]] == ["float", "int8-dotprod"]

    targets = fleet.app.state.tuf.current_targets().targets
    for variant in ("float", "int8-dotprod"):
        path = f"digits/1.0.0/digits-1.0.0.{variant}.lsp"
        assert path in targets
    dot_sha = targets["digits/1.0.0/digits-1.0.0.int8-dotprod.lsp"].hashes["sha256"]
    for name in ("digits-1.0.0.int8-dotprod.lsp", f"{dot_sha}.digits-1.0.0.int8-dotprod.lsp"):
        r = fleet.client.get(f"/tuf/targets/digits/1.0.0/{name}")  # served, plain and consistent-snapshot
        assert r.status_code == 200 and r.content == variant_pkg("1.0.0", DOT).read_bytes()

    pi4, pi5 = fleet.register("pi4"), fleet.register("pi5")
    a4, a5 = checkin(fleet, "pi4", pi4, PI4), checkin(fleet, "pi5", pi5, PI5)
    assert (a4["version"], a4["variant"]) == ("1.0.0", "float")
    assert (a5["version"], a5["variant"], a5["sha256"]) == ("1.0.0", "int8-dotprod", dot_sha)
    assert a5["target_path"] == "digits/1.0.0/digits-1.0.0.int8-dotprod.lsp"

    checkin(fleet, "pi5", pi5, PI5, version="1.0.0", variant="int8-dotprod")
    listing = {d["id"]: d for d in fleet.client.get("/api/v1/devices", headers=fleet.admin).json()}
    assert (
        listing["pi5"]["variant"] == "int8-dotprod" and listing["pi5"]["assigned_variant"] == "int8-dotprod"
    )
    assert listing["pi4"]["variant"] is None and listing["pi4"]["assigned_variant"] == "float"
    page = fleet.client.get("/dashboard", headers=fleet.admin).text
    assert 'id="variants-digits-1.0.0"' in page and "int8-dotprod" in page


def test_variants_that_do_not_fit_their_release_are_refused(fleet, variant_pkg):
    r = fleet.publish(variant_pkg("1.0.0", DOT))  # the release does not exist: its default comes first
    assert r.status_code == 409 and "default variant" in r.json()["detail"]
    assert fleet.client.get("/api/v1/models", headers=fleet.admin).json() == []  # nothing stored
    assert fleet.publish(variant_pkg("1.0.0", FLOAT)).status_code == 201
    assert fleet.publish(variant_pkg("1.0.0", DOT)).status_code == 201
    r = fleet.publish(variant_pkg("1.0.0", DOT))
    assert r.status_code == 409 and "already has a variant 'int8-dotprod'" in r.json()["detail"]
    r = fleet.publish(variant_pkg("1.0.0", Variant("float2", default=True)))
    assert r.status_code == 409 and "already has a default" in r.json()["detail"]
    assert fleet.publish(variant_pkg("1.1.0", None)).status_code == 201  # a plain release
    r = fleet.publish(variant_pkg("1.1.0", DOT))
    assert r.status_code == 409 and "published without variants" in r.json()["detail"]
    r = fleet.publish(variant_pkg("1.2.0", FLOAT, key="other"))  # untrusted signer: refused as before
    assert r.status_code == 422


# ---- per-group rollouts (issue 24.2) --------------------------------------------------------------

_ids = itertools.count()


def conf_hist(rng, n, a, b):
    return np.histogram(rng.beta(a, b, size=n), bins=20, range=(0.0, 1.0))[0].astype(int).tolist()


def window(version, hist):
    latency = [0] * 12
    latency[3] = sum(hist)
    return {
        "window_id": f"g-{next(_ids)}-{time.time_ns()}",
        "model_id": "digits",
        "model_version": version,
        "started": time.time() - 60,
        "ended": time.time(),
        "inferences": sum(hist),
        "confidence_hist": hist,
        "latency_hist": latency,
        "latency_edges_ms": [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    }


@pytest.fixture
def mixed_fleet(fleet, variant_pkg):
    """1.0.0 (plain) stable; 1.1.0 with a float default and an int8-dotprod variant; 16 Pi 4 and 16 Pi 5."""
    for pkg in (variant_pkg("1.0.0", None), variant_pkg("1.1.0", FLOAT), variant_pkg("1.1.0", DOT)):
        assert fleet.publish(pkg).status_code == 201
    devices = {}
    for kind, profile in (("pi4", PI4), ("pi5", PI5)):
        for i in range(16):
            devices[f"{kind}-{i:02d}"] = (fleet.register(f"{kind}-{i:02d}"), profile)
    return fleet, devices


def report_round(fleet, devices, rng, bad_group):
    """Every device checks in and runs what it is told; the candidate of ``bad_group`` is less confident."""
    seen = {}
    for dev, (headers, profile) in devices.items():
        a = checkin(fleet, dev, headers, profile)
        checkin(fleet, dev, headers, profile, version=a["version"], variant=a["variant"])
        bad = a["arm"] == "candidate" and a.get("group") == bad_group
        hist = conf_hist(rng, 400, *((2, 8) if bad else (8, 2)))
        r = fleet.client.post(
            f"/api/v1/devices/{dev}/telemetry", json=window(a["version"], hist), headers=headers
        )
        assert r.status_code == 201, r.text
        seen[dev] = a
    return seen


def run_rollout(fleet, devices, scope, bad_group="int8-dotprod", rounds=12):
    rng = np.random.default_rng(7)
    r = fleet.rollout("1.1.0", stages=[50, 100], min_arm_devices=4, halt_scope=scope)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["halt_scope"] == scope and set(r.json()["groups"]) == {"float", "int8-dotprod"}
    for _ in range(rounds):
        state = fleet.client.get(f"/api/v1/rollouts/{rid}", headers=fleet.admin).json()
        if state["state"] not in ("running", "paused"):
            break
        report_round(fleet, devices, rng, bad_group)
    return fleet.client.get(f"/api/v1/rollouts/{rid}", headers=fleet.admin).json()


def test_a_worse_group_is_halted_alone_while_the_other_promotes(mixed_fleet):
    fleet, devices = mixed_fleet
    r = run_rollout(fleet, devices, "group")
    actions = [d["action"] for d in r["decisions"] if d["action"] != "wait"]
    assert r["state"] == "promoted", [
        (d["action"], d["reasons"], d["numbers"].get("groups", {}).get("float", {}).get("progress"))
        for d in r["decisions"]
        if d["action"] != "wait"
    ]
    assert r["halted_groups"] == ["int8-dotprod"] and "halt-group" in actions
    halt = next(d for d in r["decisions"] if d["action"] == "halt-group")
    assert any("int8-dotprod" in reason for reason in halt["reasons"])
    # after promotion: Pi 4 runs the candidate's float variant, Pi 5 stays on the control 1.0.0
    for dev, (headers, profile) in devices.items():
        a = checkin(fleet, dev, headers, profile)
        if dev.startswith("pi4"):
            assert (a["version"], a["variant"], a["reason_code"]) == ("1.1.0", "float", "stable"), a
        else:
            assert a["version"] == "1.0.0" and a["reason_code"] in ("group-held", "rollback-to-control"), a
            assert a["group"] == "int8-dotprod"


def test_with_scope_release_a_worse_group_halts_the_whole_rollout(mixed_fleet):
    fleet, devices = mixed_fleet
    r = run_rollout(fleet, devices, "release")
    assert r["state"] == "halted", [d["action"] for d in r["decisions"]]
    last = [d for d in r["decisions"] if d["action"] == "halt"][-1]
    assert last["numbers"]["halted_groups"] == ["int8-dotprod"]
    assert {checkin(fleet, d, h, p)["version"] for d, (h, p) in devices.items()} == {"1.0.0"}


def test_windows_carry_the_variant_the_device_runs(mixed_fleet):
    fleet, devices = mixed_fleet
    headers, profile = devices["pi5-00"]
    a = checkin(fleet, "pi5-00", headers, profile)
    checkin(fleet, "pi5-00", headers, profile, version=a["version"], variant="int8-dotprod")
    fleet.client.post(
        "/api/v1/devices/pi5-00/telemetry", json=window(a["version"], [3] * 20), headers=headers
    )
    rows = fleet.client.get("/api/v1/devices/pi5-00/telemetry", headers=fleet.admin).json()
    assert rows[0]["variant"] == "int8-dotprod"


def test_the_dashboard_shows_per_group_progress(mixed_fleet):
    fleet, devices = mixed_fleet
    r = run_rollout(fleet, devices, "group", rounds=1)
    page = fleet.client.get("/dashboard", headers=fleet.admin).text
    assert (
        f'id="rollout-{r["id"]}"' in page
        and 'data-group="int8-dotprod"' in page
        and 'data-group="float"' in page
    )
    assert "halts the group only" in page


# ---- bandwidth (issue 24.5) -----------------------------------------------------------------------


def test_downloads_are_counted_per_device_and_per_release(fleet, variant_pkg):
    fleet.publish(variant_pkg("1.0.0", FLOAT))
    fleet.publish(variant_pkg("1.0.0", DOT))
    headers = fleet.register("pi5")
    a = checkin(fleet, "pi5", headers, PI5)
    target, size = a["target_path"], a["size"]
    first = {
        "event": "downloaded",
        "version": "1.0.0",
        "target": target,
        "bytes": size // 3,
        "size": size,
        "at": 1.0,
    }
    resumed = {**first, "bytes": size - size // 3, "resumed_from": size // 3, "at": 2.0}
    bad = [
        {**first, "bytes": -1, "at": 3.0},
        {**first, "bytes": True, "at": 4.0},
        {**first, "target": "", "at": 5.0},
        {**first, "at": 5e9},  # after 2100: skipped
    ]
    for events in ([first], [first, resumed, *bad]):  # the first event is resent: stored once
        body = {"model_id": "digits", "runtime": PI5, "health": {"events": events}}
        r = fleet.client.post("/api/v1/devices/pi5/checkin", json=body, headers=headers)
        assert r.status_code == 200, r.text
    listing = {d["id"]: d for d in fleet.client.get("/api/v1/devices", headers=fleet.admin).json()}
    assert listing["pi5"]["downloaded_bytes"] == size
    per_target = fleet.client.get("/api/v1/models/digits/downloads", headers=fleet.admin).json()
    assert per_target == [
        {
            "version": "1.0.0",
            "target": target,
            "size": size,
            "downloads": 2,
            "devices": 1,
            "bytes": size,
            "bytes_per_device": float(size),
        }
    ]
    assert "Downloaded" in fleet.client.get("/dashboard", headers=fleet.admin).text
    assert fleet.client.get("/api/v1/models/nope/downloads", headers=fleet.admin).status_code == 404
