"""Validation jobs through the API (SQLite and PostgreSQL): the workstation's files, a device's outputs
as the agent computes them (real LiteRT, the agent's own code), the server's figures — equal to
`liteship validate` on the same data — per device and per hardware group, the gates, and the bounds:
a device answers only its own open task, with outputs whose counts, shapes and sizes add up."""

from __future__ import annotations

import base64
import os
import threading

import numpy as np
import pytest

from liteship.agent.jobs import LiveGate, Pacer
from liteship.agent.jobs_validate import NOISE_ENV, load_samples, run_validation
from liteship.fleet.jobs_client import DATA_NAME, prepare_validation
from liteship.validate import validate

PI = {"machine": "aarch64", "cpu_model": "Cortex-A76", "cores": 4, "isa": ["neon", "dotprod"]}
PC = {"machine": "x86_64", "cpu_model": "EPYC", "cores": 2, "isa": ["avx2"]}
VARIANT = "int8.tflite"


@pytest.fixture(scope="module")
def val_data(digits, tmp_path_factory):
    _, _, x, y = digits
    path = tmp_path_factory.mktemp("val") / "val.npz"
    np.savez(path, x=x[:120], y=y[:120])
    return path


@pytest.fixture(scope="module")
def prepared(tflite_int8, tflite_float, val_data):
    return prepare_validation([tflite_int8], val_data, reference=tflite_float, names=[VARIANT])


@pytest.fixture
def job(fleet, tflite_int8, prepared, tmp_path):
    heads = {d: fleet.register(d) for d in ("pi-1", "pi-2", "pc-1", "other")}
    for d, h in heads.items():
        body = {"model_id": "digits", "model_version": None, "runtime": PC if d.startswith("pc") else PI}
        assert fleet.client.post(f"/api/v1/devices/{d}/checkin", json=body, headers=h).status_code == 200

    def up(data: bytes) -> str:
        r = fleet.client.post("/api/v1/bench/variants", content=data, headers=fleet.admin)
        assert r.status_code == 201, r.text
        return r.json()["sha256"]

    body = {
        "kind": "validate",
        "variants": [{"name": VARIANT, "sha256": up(tflite_int8.read_bytes())}],
        "data": {"name": DATA_NAME, "sha256": up(prepared.data)},
        "reference": up(prepared.reference),
        "gates": {"min_agreement": 0.9},
        "devices": ["pi-1", "pi-2", "pc-1"],
    }
    r = fleet.client.post("/api/v1/bench/jobs", json=body, headers=fleet.admin)
    assert r.status_code == 201, r.text
    (tmp_path / "x.npz").write_bytes(prepared.data)
    return r.json(), heads, load_samples(tmp_path / "x.npz")


def device_outputs(path, x, noise: str | None = None) -> dict:
    """What the agent sends: its own code, real LiteRT, between frames of a (here idle) live loop."""
    old = os.environ.pop(NOISE_ENV, None)
    if noise:
        os.environ[NOISE_ENV] = noise
    try:
        pacer = Pacer(LiveGate(), 1.0, threading.Event())
        row, body = run_validation(VARIANT, path, x, pacer=pacer, accelerator=None, num_threads=1)
    finally:
        os.environ.pop(NOISE_ENV, None)
        if old is not None:
            os.environ[NOISE_ENV] = old
    assert row["ok"] and body is not None, row
    return body


def test_figures_equal_local_validate_per_device_and_group(fleet, job, tflite_int8, tflite_float, val_data):
    queued, heads, x = job
    offer = fleet.client.post(
        "/api/v1/devices/pi-1/checkin",
        json={"model_id": "digits", "model_version": None},
        headers=heads["pi-1"],
    ).json()["jobs"][0]
    assert offer["kind"] == "validate" and offer["data"]["name"] == DATA_NAME
    assert "reference" not in offer and "gates" not in offer  # the reference outputs stay on the server
    honest = device_outputs(tflite_int8, x)
    noisy = device_outputs(tflite_int8, x, noise="3.0")
    for dev, body in (("pi-1", honest), ("pi-2", honest), ("pc-1", noisy)):
        r = fleet.client.post(
            f"/api/v1/devices/{dev}/bench/{queued['id']}/outputs", json=body, headers=heads[dev]
        )
        assert r.status_code == 200, r.text
    done = {"state": "done", "results": [{"name": VARIANT, "ok": True, "samples": len(x)}]}
    for dev in ("pi-1", "pi-2", "pc-1"):
        r = fleet.client.post(f"/api/v1/devices/{dev}/bench/{queued['id']}", json=done, headers=heads[dev])
        assert r.status_code == 200, r.text
    got = fleet.client.get(f"/api/v1/bench/jobs/{queued['id']}", headers=fleet.admin).json()
    assert got["kind"] == "validate" and got["state"] == "complete"
    local = validate(tflite_int8, tflite_float, val_data, progress=False, min_agreement=0.9)
    fig = next(t for t in got["tasks"] if t["device_id"] == "pi-1")["results"][0]["validation"]
    assert fig["samples"] == local.samples == len(x)
    for a, b in zip(fig["agreement"], local.agreement, strict=True):
        assert a["top1"] == pytest.approx(b.top1, abs=1e-9) and a["top5"] == pytest.approx(b.top5, abs=1e-9)
        assert a["candidate_accuracy"] == pytest.approx(b.candidate_accuracy, abs=1e-9)
    for o, lo in zip(fig["outputs"], local.outputs, strict=True):
        assert o["max_abs_error"] == pytest.approx(lo.max_abs_error, rel=1e-5, abs=1e-7)
        assert o["mean_abs_error"] == pytest.approx(lo.mean_abs_error, rel=1e-5, abs=1e-7)
        assert o["sqnr_db"] == pytest.approx(lo.sqnr_db, rel=1e-5)
    assert fig["passed"] == local.passed is True
    groups = {g["group"]: g for g in got["groups"]}
    assert groups["aarch64+neon+dotprod"]["passed"] and groups["aarch64+neon+dotprod"]["answered"] == 2
    pc = groups["x86_64+avx2"]
    assert not pc["passed"] and pc["top1_min"] < 0.9 and any("min_agreement" in f for f in pc["failures"]), pc


def test_a_device_answers_only_its_own_open_task_with_bounded_outputs(fleet, job, tflite_int8):
    queued, heads, x = job
    url = f"/bench/{queued['id']}/outputs"
    body = device_outputs(tflite_int8, x)
    # another device's task, a device without a task, no token
    assert (
        fleet.client.post(f"/api/v1/devices/pi-1{url}", json=body, headers=heads["pi-2"]).status_code == 403
    )
    assert (
        fleet.client.post(f"/api/v1/devices/other{url}", json=body, headers=heads["other"]).status_code == 404
    )
    assert fleet.client.post(f"/api/v1/devices/pi-1{url}", json=body).status_code == 401
    own = f"/api/v1/devices/pi-1{url}"
    arr = body["outputs"][0]
    bad_bodies = [
        {**body, "samples": len(x) - 1},  # not the job's samples
        {**body, "outputs": [{**arr, "shape": [len(x), 3]}]},  # bytes ≠ shape × dtype
        {**body, "outputs": [{**arr, "data": "not base64!"}]},
        {**body, "outputs": [{**arr, "dtype": "object"}]},
        {**body, "outputs": [{**arr, "data": base64.b64encode(b"\0" * (700 << 10)).decode()}]},
        {**body, "name": "../../etc"},
        {**body, "name": "missing.tflite"},
    ]
    for bad in bad_bodies:
        r = fleet.client.post(own, json=bad, headers=heads["pi-1"])
        assert r.status_code in (400, 404, 413, 422), (r.status_code, r.text)
        assert "detail" in r.json()
    # NaN outputs are counted and fail the job's gates
    nan = np.full(arr["shape"], np.nan, dtype=arr["dtype"])
    r = fleet.client.post(
        own,
        json={**body, "outputs": [{**arr, "data": base64.b64encode(nan.tobytes()).decode()}]},
        headers=heads["pi-1"],
    )
    assert r.status_code == 200, r.text
    fig = r.json()["results"][0]["validation"]
    assert not fig["passed"] and fig["outputs"][0]["candidate_nan"] == nan.size
    # a finished task takes no more outputs
    done = {"state": "failed", "error": "stop"}
    assert (
        fleet.client.post(
            f"/api/v1/devices/pi-1/bench/{queued['id']}", json=done, headers=heads["pi-1"]
        ).status_code
        == 200
    )
    assert fleet.client.post(own, json=body, headers=heads["pi-1"]).status_code == 400


def test_job_pages_on_the_dashboard(fleet, job, tflite_int8, tflite_float):
    """The validate job's page (per device, per group, verdicts) and a profile job's page (table and
    chart of the slowest ops, device strings escaped); admins only."""
    from liteship.agent.jobs_profile import run_profile

    queued, heads, x = job
    body = device_outputs(tflite_int8, x, noise="3.0")
    assert (
        fleet.client.post(
            f"/api/v1/devices/pc-1/bench/{queued['id']}/outputs", json=body, headers=heads["pc-1"]
        ).status_code
        == 200
    )
    page = fleet.client.get(f"/dashboard/jobs/{queued['id']}", headers=fleet.admin)
    assert page.status_code == 200 and 'id="groups"' in page.text and "x86_64+avx2" in page.text
    assert "FAIL" in page.text and "min_agreement" in page.text
    assert fleet.client.get(f"/dashboard/jobs/{queued['id']}", follow_redirects=False).status_code == 303

    up = fleet.client.post(
        "/api/v1/bench/variants", content=tflite_float.read_bytes(), headers=fleet.admin
    ).json()
    prof = fleet.client.post(
        "/api/v1/bench/jobs",
        json={
            "kind": "profile",
            "variants": [{"name": "f.tflite", "sha256": up["sha256"]}],
            "devices": ["pi-1"],
        },
        headers=fleet.admin,
    ).json()
    row = run_profile(
        "f.tflite", tflite_float, pacer=Pacer(LiveGate(), 1.0, threading.Event()), num_threads=1, runs=5
    )
    assert row["ok"] and row["ops"], row
    row["ops"][0]["op"] = "<script>alert(1)</script>"  # a lying device
    r = fleet.client.post(
        f"/api/v1/devices/pi-1/bench/{prof['id']}",
        json={"state": "done", "results": [row]},
        headers=heads["pi-1"],
    )
    assert r.status_code == 200, r.text
    page = fleet.client.get(f"/dashboard/jobs/{prof['id']}", headers=fleet.admin).text
    assert "<svg" in page and "CONV_2D" in page and "XNNPACK" in page and "first inference" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    listing = fleet.client.get("/dashboard/jobs", headers=fleet.admin).text
    assert prof["id"] in listing and "profile" in listing and "validate" in listing
