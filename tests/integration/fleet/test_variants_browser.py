"""The dashboard in headless Chromium (issue 24): a release's variants, which devices run which, and a
per-group rollout's progress."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from liteship.package import Variant, build_package, parse_when

from .conftest import ADMIN, ENROLL, MODEL_FILE
from .test_dashboard_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.browser
PI4 = {"machine": "aarch64", "isa": ["neon"]}
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"]}


@pytest.fixture
def variant_fleet(live_server, keys, tmp_path):
    url, admin = live_server.url, {"Authorization": f"Bearer {ADMIN}"}
    for version in ("1.0.0", "1.1.0"):
        for variant in (
            Variant("float", default=True),
            Variant("int8-dotprod", when=(parse_when("isa=dotprod"),)),
        ):
            info = build_package(
                MODEL_FILE,
                tmp_path / "lsp",
                model_id="digits",
                version=version,
                private_key=keys["good"].private_path,
                golden_inputs=np.full((1, 224, 224, 3), 128, dtype=np.uint8),
                variant=variant,
            )
            r = httpx.post(
                url + "/api/v1/releases", content=Path(info.path).read_bytes(), headers=admin, timeout=60
            )
            assert r.status_code == 201, r.text
    for i, profile in enumerate([PI4, PI4, PI5, PI5]):
        dev = f"pi-{i}"
        token = httpx.post(
            url + "/api/v1/devices/register",
            json={"device_id": dev, "enrollment_token": ENROLL, "model_id": "digits"},
        ).json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        a = httpx.post(f"{url}/api/v1/devices/{dev}/checkin", json={"runtime": profile}, headers=h).json()
        body = {
            "model_id": "digits",
            "model_version": a["version"],
            "model_variant": a["variant"],
            "runtime": profile,
        }
        assert httpx.post(f"{url}/api/v1/devices/{dev}/checkin", json=body, headers=h).status_code == 200
    r = httpx.post(
        url + "/api/v1/rollouts",
        json={"model_id": "digits", "candidate_version": "1.1.0", "stages": [50, 100], "halt_scope": "group"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return url, r.json()["id"]


def test_dashboard_shows_variants_and_per_group_progress(variant_fleet, tmp_path):
    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/os-deps.sh does it in CI)")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, rid = variant_fleet
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True
        )
        try:
            page = ctx.new_page()
            page.goto(url + "/dashboard")
            page.fill("input[name=token]", ADMIN)
            page.click("button[type=submit]")
            page.wait_for_url(url + "/dashboard")
            table = page.locator("#variants-digits-1\\.0\\.0")
            rows = {r.split("\t")[0]: r for r in table.locator("tbody tr").all_inner_texts()}
            assert set(rows) == {"float", "int8-dotprod"}
            assert "yes" in rows["float"] and "dotprod" in rows["int8-dotprod"]
            assert rows["float"].split("\t")[3] == "2" and rows["int8-dotprod"].split("\t")[3] == "2"
            devices = {r.split("\t")[0]: r for r in page.locator("#devices tbody tr").all_inner_texts()}
            assert "int8-dotprod" in devices["pi-2"] and "float" in devices["pi-0"]
            groups = page.locator(f"#rollout-{rid} table.groups")
            assert "halts the group only" in groups.inner_text()
            assert sorted(groups.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.group)")) == [
                "float",
                "int8-dotprod",
            ]
            page.screenshot(path=str(tmp_path / "variants.png"), full_page=True)
        finally:
            ctx.close()
