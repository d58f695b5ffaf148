"""The field-samples gallery and the drift panel's capture offer in headless Chromium (issue 25):
drift alerts, the operator turns capture on from the panel, devices upload samples, the gallery shows
them per model/version/trigger with prediction and confidence, and the operator labels and discards."""

from __future__ import annotations

import shutil
import time

import httpx
import numpy as np
import pytest

from liteship.agent.capture import encode_sample

from .conftest import ADMIN, ENROLL

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def digit(k: int) -> np.ndarray:
    """A crude 8x8 digit-like picture (raw domain 0..16), different per k."""
    x = np.zeros((8, 8, 1), np.float32)
    x[1:7, 2 + k % 3 : 5 + k % 3, 0] = 16.0
    x[k % 8, :, 0] = 8.0
    return x


@pytest.fixture
def drifting(live_server, make_package):
    url, admin = live_server.url, {"Authorization": f"Bearer {ADMIN}"}
    r = httpx.post(
        url + "/api/v1/releases",
        content=make_package("digits", "1.0.0").read_bytes(),
        params={"channel": "stable"},
        headers=admin,
        timeout=60,
    )
    assert r.status_code == 201, r.text
    rng = np.random.default_rng(0)
    tokens = {}
    for i in range(2):
        dev = f"cam-{i}"
        token = httpx.post(
            url + "/api/v1/devices/register",
            json={"device_id": dev, "enrollment_token": ENROLL, "model_id": "digits"},
        ).json()["token"]
        h = tokens[dev] = {"Authorization": f"Bearer {token}"}
        httpx.post(
            f"{url}/api/v1/devices/{dev}/checkin",
            json={"model_id": "digits", "model_version": "1.0.0"},
            headers=h,
        ).raise_for_status()
        hist = np.histogram(rng.beta(2, 2, 400), bins=20, range=(0, 1))[0].tolist()  # far below the reference
        httpx.post(
            f"{url}/api/v1/devices/{dev}/telemetry",
            headers=h,
            json={
                "window_id": f"w{i}",
                "model_id": "digits",
                "model_version": "1.0.0",
                "started": time.time() - 60,
                "ended": time.time(),
                "inferences": 400,
                "confidence_hist": hist,
            },
        ).raise_for_status()
    return url, tokens


def test_drift_offers_capture_and_the_gallery_labels_and_discards(drifting, tmp_path):
    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/os-deps.sh does it in CI)")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, tokens = drifting
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
            offer = page.locator("#capture-offer-digits")
            assert "passed the alert band" in offer.inner_text()
            assert "liteship fleet capture on digits --trigger random@0.1" in offer.inner_text()
            offer.screenshot(path=str(tmp_path / "offer.png"))
            offer.locator("button").click()
            page.wait_for_url(url + "/dashboard#capture-digits")
            assert "Capture is on for digits (signed)" in page.locator("#capture-digits").inner_text()
            policy = httpx.get(
                url + "/api/v1/models/digits/capture", headers={"Authorization": f"Bearer {ADMIN}"}
            )
            sha = policy.json()["policy"]["sha256"]
            for i in range(6):  # what two devices captured under that policy
                dev = f"cam-{i % 2}"
                meta = {
                    "sample_id": f"s{i}",
                    "model_id": "digits",
                    "version": "1.0.0",
                    "trigger": ["random", "low-confidence"][i % 2],
                    "class": i,
                    "label": None,
                    "confidence": 0.3 + 0.1 * i,
                    "captured_at": time.time(),
                    "policy": sha,
                    "preprocessing": {"mean": [0.0], "std": [16.0]},
                }
                data = encode_sample(digit(i) / 16.0, np.eye(10)[i], meta, None)
                r = httpx.put(f"{url}/api/v1/devices/{dev}/samples/s{i}", content=data, headers=tokens[dev])
                assert r.status_code == 201, r.text
            page.click("#samples-link")
            page.wait_for_url(url + "/dashboard/samples")
            page.click("p.filters a:text('digits')")  # a navigation: expect() waits for it, count() would not
            expect = sync_api.expect
            expect(page.locator("#counts")).to_have_text("6 samples, 0 labeled, 0 discarded.")
            cards = page.locator(".sample")
            expect(cards).to_have_count(6)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.sample img')].every((i) => i.complete)"
            )
            assert all(
                page.evaluate("(img) => img.naturalWidth", img.element_handle()) == 8
                for img in cards.locator("img").all()
            )
            first = page.locator("#sample-1")  # the oldest, s0: class 0, confidence 0.30, random
            assert "0.30" in first.inner_text() and "random" in first.inner_text()
            page.click("p.filters a:text('low-confidence')")
            expect(page.locator(".sample")).to_have_count(3)  # count() reads at once, mid-navigation
            page.goto(url + "/dashboard/samples?model=digits")
            page.screenshot(path=str(tmp_path / "gallery.png"), full_page=True)
            shutil.copy(tmp_path / "gallery.png", "/tmp/fleet-samples-gallery.png")
            shutil.copy(tmp_path / "offer.png", "/tmp/fleet-capture-offer.png")
            first = page.locator("#sample-1")
            first.locator("select[name=label]").select_option("7")
            first.locator("button:text('Label')").click()
            page.wait_for_url("**/dashboard/samples?model=digits#sample-1")
            assert "label" in page.locator("#sample-1").inner_text()
            assert "labeled" in (page.locator("#sample-1").get_attribute("class") or "")
            page.locator("#sample-2 button:text('Discard')").click()
            page.wait_for_url("**#sample-2")
            expect(page.locator("#sample-2")).to_have_count(0)
            expect(page.locator("#counts")).to_have_text("6 samples, 1 labeled, 1 discarded.")
        finally:
            ctx.close()
    rows = httpx.get(
        url + "/api/v1/samples",
        params={"model_id": "digits", "discarded": "true"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()
    assert [r["sample_id"] for r in rows] == ["s1"]
