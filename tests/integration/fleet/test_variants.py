"""Multi-variant releases on the server (issue 24): publish the variants of one release, each a TUF
target; each device is assigned the variant its reported profile selects; listing shows it."""

from __future__ import annotations

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


def test_each_device_gets_the_variant_its_profile_selects(sqlite_fleet, variant_pkg):
    fleet = sqlite_fleet
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


def test_variants_that_do_not_fit_their_release_are_refused(sqlite_fleet, variant_pkg):
    fleet = sqlite_fleet
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
