"""The dashboard in headless Chromium: sign in as a person would, then read what the page shows."""

from __future__ import annotations

import shutil
import time

import httpx
import numpy as np
import pytest

from liteship.fleet.drift import resample

from .conftest import ADMIN, ENROLL, REFERENCE

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture
def populated(live_server, make_package):
    url, admin = live_server.url, {"Authorization": f"Bearer {ADMIN}"}
    for v in ("1.0.0", "1.1.0"):
        assert (
            httpx.post(
                url + "/api/v1/releases",
                content=make_package("digits", v).read_bytes(),
                headers=admin,
                timeout=60,
            ).status_code
            == 201
        )
    rid = httpx.post(
        url + "/api/v1/rollouts",
        json={"model_id": "digits", "candidate_version": "1.1.0", "stages": [60, 100]},
        headers=admin,
    ).json()["id"]
    rng = np.random.default_rng(0)
    reference = np.array(resample(REFERENCE["counts"], REFERENCE["bins"], 20))
    for i in range(10):
        dev = f"cam-{i}"
        token = httpx.post(
            url + "/api/v1/devices/register",
            json={"device_id": dev, "enrollment_token": ENROLL, "model_id": "digits"},
        ).json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        a = httpx.post(f"{url}/api/v1/devices/{dev}/checkin", json={}, headers=h).json()
        httpx.post(
            f"{url}/api/v1/devices/{dev}/checkin",
            json={
                "model_id": "digits",
                "model_version": a["version"],
                "runtime": {"name": "litert"},
                "health": {"status": "ok"},
            },
            headers=h,
        )
        # the control matches the reference; the candidate's confidence is much lower (drift + halt)
        if a["arm"] == "candidate":
            hist = np.histogram(rng.beta(2, 2, 300), bins=20, range=(0, 1))[0].tolist()
        else:
            hist = rng.multinomial(300, reference / reference.sum()).tolist()
        httpx.post(
            f"{url}/api/v1/devices/{dev}/telemetry",
            headers=h,
            json={
                "window_id": f"w{i}",
                "model_id": "digits",
                "model_version": a["version"],
                "started": time.time() - 60,
                "ended": time.time(),
                "inferences": 300,
                "confidence_hist": hist,
            },
        ).raise_for_status()
    return url, rid


def test_dashboard_shows_fleet_rollouts_and_drift(populated, tmp_path):
    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/os-deps.sh does it in CI)")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, rid = populated
    requested: list[str] = []
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True
        )
        try:
            page = ctx.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.goto(url + "/dashboard")
            assert page.url.endswith("/dashboard/login")  # not signed in: the form, not the data
            page.fill("input[name=token]", ADMIN)
            page.click("button[type=submit]")
            page.wait_for_url(url + "/dashboard")
            assert page.locator("h1").inner_text() == "liteship fleet"
            assert page.locator("#n-devices").inner_text() == "10"
            assert page.locator("#n-seen").inner_text() == "10"
            rows = page.locator("#devices tbody tr")
            assert rows.count() == 10 and "cam-0" in rows.first.inner_text()
            versions = page.locator("svg[aria-label='devices per version']")
            assert versions.is_visible() and "digits 1.0.0" in versions.text_content()
            rollout = page.locator("section.rollout").first
            text = rollout.inner_text()
            assert f"Rollout {rid}: digits 1.0.0 → 1.1.0" in text and "halted" in text
            assert "candidate confidence is lower" in text  # the decision with its reason
            drift = page.locator("figure.drift")
            captions = [drift.nth(i).locator("figcaption").inner_text() for i in range(drift.count())]
            assert any(c.startswith("digits 1.1.0") and "alert" in c for c in captions), captions
            assert any(c.startswith("digits 1.0.0") and "ok" in c for c in captions), captions
            assert page.locator("figure.drift svg circle.alert").first.is_visible()
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            ctx.close()
    assert requested and all(r.startswith(url) for r in requested), requested  # self-contained: no CDN
