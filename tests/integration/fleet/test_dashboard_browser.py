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
            # issue 22 (8): the finished rollout keeps its arm panels, with its final verdict
            assert "Finished (halted) — final verdict: halt by engine" in text, text
            assert rollout.locator("svg[aria-label='confidence histograms']").is_visible()
            assert rollout.locator("table.stats").is_visible()
            drift = page.locator("figure.drift")
            items = drift.locator("ul.legend li").all_inner_texts()
            assert any(c.startswith("digits 1.1.0") and "alert" in c for c in items), items
            assert any(c.startswith("digits 1.0.0") and "ok" in c for c in items), items
            assert page.locator("svg[aria-label='drift of digits'] rect.band").count() == 2
            # the drift axis ends where the hour of the telemetry ends (it read ±30 s around its start)
            end = page.locator("svg[aria-label='drift of digits'] text.axis-end").text_content()
            hours = {(time.time() - d) // 3600 * 3600 + 3600 for d in (0, 120)}
            assert end in {time.strftime("%H:%M UTC", time.gmtime(h)) for h in hours}, end
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            ctx.close()
    assert requested and all(r.startswith(url) for r in requested), requested  # self-contained: no CDN


@pytest.fixture
def running(live_server, make_package):
    """A rollout at 50 % that started 30 min ago, ten devices reporting every 2 minutes since, and
    hourly telemetry from before; min_predictions is high, so it keeps running (waits)."""
    from sqlalchemy import text

    url, admin = live_server.url, {"Authorization": f"Bearer {ADMIN}"}
    for v in ("1.0.0", "1.1.0"):
        r = httpx.post(
            url + "/api/v1/releases",
            content=make_package("digits", v).read_bytes(),
            headers=admin,
            timeout=60,
        )
        assert r.status_code == 201
    body = {
        "model_id": "digits",
        "candidate_version": "1.1.0",
        "stages": [50, 100],
        "thresholds": {"min_predictions": 10**6},
    }
    rid = httpx.post(url + "/api/v1/rollouts", json=body, headers=admin).json()["id"]
    now = time.time()
    with live_server.app.state.engine.begin() as c:
        c.execute(text("UPDATE rollouts SET created_at = :t, stage_started_at = :t"), {"t": now - 1800})
    rng = np.random.default_rng(0)
    reference = np.array(resample(REFERENCE["counts"], REFERENCE["bins"], 20))
    edges = [0.5, 1, 2, 5, 10, 20, 50, 100]
    with httpx.Client(base_url=url) as c:
        for i in range(10):
            dev = f"cam-{i}"
            token = c.post(
                "/api/v1/devices/register",
                json={"device_id": dev, "enrollment_token": ENROLL, "model_id": "digits"},
            ).json()["token"]
            h = {"Authorization": f"Bearer {token}"}
            a = c.post(f"/api/v1/devices/{dev}/checkin", json={}, headers=h).json()
            profile = {
                "machine": "aarch64",
                "cpu_model": "Cortex-A76",
                "cores": 4,
                "isa": ["neon", "dotprod"],
                "litert": "2.3.0",
            }
            c.post(
                f"/api/v1/devices/{dev}/checkin",
                json={"model_id": "digits", "model_version": a["version"], "runtime": profile},
                headers=h,
            )
            cand = a["arm"] == "candidate"
            ends = [now - 3 * 3600 + k * 3600 for k in range(3)] + [
                now - 1800 + 120 * k for k in range(1, 15)
            ]
            for k, ended in enumerate(ends):
                probs = reference / reference.sum()
                hist = (
                    rng.multinomial(400, probs).tolist()
                    if not cand or k < 3
                    else np.histogram(rng.beta(6, 2, 400), bins=20, range=(0, 1))[0].tolist()
                )
                lat = [0] * 9
                slow = 4 + (k > 8 and cand)  # the candidate gets slower late in the rollout
                lat[slow], lat[slow - 1] = 300, 100
                w = {
                    "window_id": f"w{i}-{k}",
                    "model_id": "digits",
                    "model_version": a["version"],
                    "started": ended - 60,
                    "ended": ended,
                    "inferences": 400,
                    "errors": int(cand and k % 4 == 0) * 3,
                    "confidence_hist": hist,
                    "latency_hist": lat,
                    "latency_edges_ms": edges,
                }
                c.post(f"/api/v1/devices/{dev}/telemetry", headers=h, json=w).raise_for_status()
    return url, rid


def test_running_rollout_candidate_vs_control(running, tmp_path):
    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/os-deps.sh does it in CI)")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, rid = running
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True
        )
        try:
            page = ctx.new_page()
            page.set_viewport_size({"width": 1200, "height": 900})
            page.goto(url + "/dashboard/login")
            page.fill("input[name=token]", ADMIN)
            page.click("button[type=submit]")
            page.wait_for_url(url + "/dashboard")
            panel = page.locator("section.rollout[data-state=running]")
            text = panel.inner_text()
            assert f"Rollout {rid}: digits 1.0.0 → 1.1.0" in text
            assert "Next: wait" in text and "/1,000,000 predictions" in text, text
            assert "at the current rate" in text  # when the thresholds will be met
            cand = panel.locator("ul.progress li.candidate").inner_text()
            assert cand.startswith("candidate ") and "/2 devices" in cand, cand
            assert panel.locator("svg[aria-label='confidence histograms'] rect.candidate").count() == 20
            assert panel.locator("svg[aria-label='latency p95 per period'] polyline").count() == 2
            assert panel.locator("table.stats").inner_text().count("ms") >= 2
            assert "Cortex-A76" in page.locator("#devices").inner_text()
            assert page.locator("svg[aria-label='drift of digits'] polyline").count() == 2
            panel.screenshot(path=str(tmp_path / "rollout.png"))
            page.locator("figure.drift").first.screenshot(path=str(tmp_path / "drift.png"))
            page.screenshot(path=str(tmp_path / "dashboard-running.png"), full_page=True)
            import shutil as _sh

            _sh.copy(tmp_path / "rollout.png", "/tmp/fleet-rollout.png")
            _sh.copy(tmp_path / "drift.png", "/tmp/fleet-drift.png")
            _sh.copy(tmp_path / "dashboard-running.png", "/tmp/fleet-dashboard-running.png")
            # the operator steers from the page: Pause is an admin decision, then Resume is offered
            panel.locator("button[value=pause]").click()
            page.wait_for_url(url + f"/dashboard#rollout-{rid}")
            paused = page.locator(f"section#rollout-{rid}")
            assert paused.get_attribute("data-state") == "paused"
            assert (
                "pause by admin" in paused.inner_text()
                and paused.locator("button[value=resume]").count() == 1
            )
        finally:
            ctx.close()
