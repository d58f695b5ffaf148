"""Issue 23.2 end to end: `liteship pipeline run` with `bench: devices:` queues a validation job on the
same devices beside the bench job, waits for it, and a variant that fails the pipeline's gates on a
hardware group's devices is not chosen for that group — the real server on loopback, real agent
processes, the real pipeline.

One agent runs the test-only perturbation of its int8 outputs (LITESHIP_TEST_OUTPUT_NOISE with a
variant name: a device whose int8 kernels compute wrong numbers): int8 passes on the workstation and
fails on the device group, so the group (and the package) gets the float variant; report.json and
report.html show the workstation and device figures side by side. With `bench.profile` the shipped
variant is profiled on the same devices (per-op table and chart in report.html).
"""

from __future__ import annotations

import json

import pytest
import yaml
from agent_e2e_conftest import ADMIN, wait_for
from agent_test_helpers import build
from jobs_e2e_helpers import enroll, lines, start, stop

from liteship.agent.jobs_validate import NOISE_ENV
from liteship.agent.store import Store
from liteship.package import open_package

MODEL = "pipegate"


@pytest.fixture(scope="module")
def agents(fleet, keys, golden, tflite_float, digit_pngs, tmp_path_factory):
    """Two enrolled agents serving model 1.0.0; the second one's int8 validation outputs are perturbed."""
    out = tmp_path_factory.mktemp("pkg")
    fleet.publish(
        build(tflite_float.read_bytes(), out, "1.0.0", keys.private_path, golden, model_id=MODEL), "stable"
    )
    base = tmp_path_factory.mktemp("agents")
    procs = {}
    for dev, env in (("gate-good", {}), ("gate-int8bad", {NOISE_ENV: "int8.tflite=3.0"})):
        state = enroll(fleet, keys, base / dev, dev, MODEL)
        sink = base / f"{dev}.jsonl"
        procs[dev] = (state, sink, start(state, digit_pngs, sink, env=env))
    for state, sink, _ in procs.values():
        wait_for(lambda s=state, k=sink: Store(s).current_version() == "1.0.0" and lines(k) > 0, timeout=120)
    yield procs
    for _, _, proc in procs.values():
        stop(proc)


def test_pipeline_run_gates_each_group_on_device_validation(
    fleet, agents, keys, keras_path, calib_npy, val_npz, tmp_path, monkeypatch
):
    from liteship.pipeline import run_pipeline

    cfg = {
        "source": str(keras_path),
        "model_id": MODEL,
        "version": "1.1.0",
        "output": "out",
        "recipes": ["none", "int8"],
        "calibration": {"data": str(calib_npy), "samples": 100},
        "validation": {"data": str(val_npz), "samples": 120},
        "bench": {"threads": [1], "runs": 10, "min_seconds": 0, "devices": ["gate-good", "gate-int8bad"],
                  "device_timeout_s": 300, "profile": True},
        "gates": {"max_accuracy_drop": 5.0, "min_agreement": 0.9},
        "package": {"key": str(keys.private_path), "golden_samples": 4},
    }  # fmt: skip
    path = tmp_path / "liteship.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("LITESHIP_SERVER", fleet.url)
    monkeypatch.setenv("LITESHIP_TOKEN", ADMIN)
    logged: list[str] = []
    report = run_pipeline(path, log=logged.append, progress=False)

    ws = {v.recipe: v for v in report.variants}
    assert ws["int8"].gates_passed and ws["none"].gates_passed  # both pass on the workstation
    gate = report.device_validation
    assert gate is not None and not gate.fallback and gate.job_id, gate
    (group,) = gate.groups  # both agents run on this machine: one hardware group
    assert sorted(group.devices) == ["gate-good", "gate-int8bad"]
    assert group.workstation == {"none": True, "int8": True}
    assert group.device == {"none": True, "int8": False}, group
    assert "min_agreement" in " ".join(group.excluded["int8"])
    assert group.figures["int8"]["top1_min"] < 0.9 <= group.figures["none"]["top1_min"]
    assert group.chosen == "none" and report.group_choices == {group.group: "none"}
    # the only group rejects int8: the package is the float variant, whatever the workstation chose
    assert report.chosen == "none" and report.release_variants == []
    assert report.device_selection is not None and len(report.device_selection.answered) == 2
    assert open_package(report.package["path"], keys.public_path).manifest.metrics["recipe"] == "none"
    assert any("device validation: job" in m for m in logged)

    # bench.profile: the shipped variant's per-op profile on both devices, in the report
    prof = report.device_profile
    assert prof is not None and not prof.fallback and not prof.missing, prof
    assert sorted(r.device_id for r in prof.rows) == ["gate-good", "gate-int8bad"]
    assert all(r.ok and r.recipe == "none" and r.ops and r.invoke_ms > 0 for r in prof.rows), prof.rows

    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["device_validation"]["groups"][0]["chosen"] == "none" and saved["chosen"] == "none"
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count('id="device-validation-gate"') == 1 and page.count('id="device-selection"') == 1
    assert page.count('id="device-profile"') == 1
    for state, _, proc in agents.values():  # the live model was never replaced
        assert proc.poll() is None and Store(state).current_version() == "1.0.0"
