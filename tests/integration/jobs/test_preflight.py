"""Preflight (issue 23): devices whose runtime could not load a release's model in a device job are
listed before a rollout, and `liteship fleet rollout start` warns with that list (it still starts)."""

from __future__ import annotations

import json
import zipfile

import httpx

from .conftest import ADMIN, ENROLL

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


def test_rollout_start_warns_about_devices_that_cannot_load_the_candidate(live_server, make_package, cli):
    url = live_server.url
    for version, channel in (("1.0.0", "stable"), ("1.1.0", None)):
        pkg = make_package("digits", version)
        r = httpx.post(f"{url}/api/v1/releases", content=pkg.read_bytes(), headers=ADMIN_H,
                       params={"channel": channel} if channel else None, timeout=60)  # fmt: skip
        assert r.status_code == 201, r.text
    heads = {}
    for dev in ("dev-ok", "dev-bad", "dev-none"):
        body = {"device_id": dev, "enrollment_token": ENROLL, "model_id": "digits"}
        heads[dev] = {
            "Authorization": f"Bearer {httpx.post(f'{url}/api/v1/devices/register', json=body).json()['token']}"
        }
    with zipfile.ZipFile(make_package("digits", "1.1.0")) as z:
        manifest = json.loads(z.read("manifest.json"))
        model = z.read(manifest["model"]["file"])
    sha = httpx.post(f"{url}/api/v1/bench/variants", content=model, headers=ADMIN_H).json()["sha256"]
    job = httpx.post(
        f"{url}/api/v1/bench/jobs",
        json={"variants": [{"name": "m.tflite", "sha256": sha}], "devices": ["dev-ok", "dev-bad"], "runs": 1},
        headers=ADMIN_H,
    ).json()
    reports = {
        "dev-ok": {"name": "m.tflite", "ok": True, "p50_ms": 1.0},
        "dev-bad": {
            "name": "m.tflite",
            "ok": False,
            "error": "Didn't find op for builtin opcode 'GELU' version '2'",
        },
    }
    for dev, row in reports.items():
        r = httpx.post(f"{url}/api/v1/devices/{dev}/bench/{job['id']}", json={"state": "done", "results": [row]},
                       headers=heads[dev])  # fmt: skip
        assert r.status_code == 200, r.text

    got = httpx.get(
        f"{url}/api/v1/bench/preflight", params={"model_id": "digits", "version": "1.1.0"}, headers=ADMIN_H
    )
    assert got.status_code == 200, got.text
    pre = got.json()
    status = {d["device_id"]: d["status"] for d in pre["devices"]}
    assert status == {"dev-ok": "loads", "dev-bad": "cannot-load", "dev-none": "unchecked"}
    assert pre["cannot_load"] == ["dev-bad"] and pre["model_sha256"] == sha
    assert httpx.get(f"{url}/api/v1/bench/preflight", params={"model_id": "digits", "version": "9.9.9"},
                     headers=ADMIN_H).status_code == 404  # fmt: skip
    assert httpx.get(f"{url}/api/v1/bench/preflight", params={"model_id": "digits", "version": "1.1.0"},
                     headers=heads["dev-ok"]).status_code == 403  # fmt: skip

    r = cli("fleet", "rollout", "start", "digits", "1.1.0", "--server", url, "--token", ADMIN)
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "1 device(s) could not load digits 1.1.0's model" in err and "dev-bad" in err and "GELU" in err, (
        err
    )
    assert "1 device(s) of digits have not loaded this model" in err
    r = cli("fleet", "rollout", "status", "--server", url, "--token", ADMIN, "--json")
    assert r.returncode == 0 and json.loads(r.stdout), r.stderr  # the rollout started anyway
