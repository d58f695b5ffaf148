"""Issues 23.2 + 24.1 end to end: two real agents that report different hardware
(``$LITESHIP_AGENT_PROFILE``): a "Pi 5" (aarch64+neon+dotprod) where float32 is slow
(LITESHIP_TEST_BENCH_DELAY_MS) and an "x86" gateway whose int8 outputs are wrong
(LITESHIP_TEST_OUTPUT_NOISE). `liteship pipeline run` with `bench: devices:` benches and validates on
both, so the groups choose differently — int8 on the Pi 5, float32 on the gateway — and the run writes a
release of variants (the workstation's choice the default). `liteship fleet publish out/*.lsp
--channel stable` publishes it as one release, and each agent installs the variant its group chose.
"""

from __future__ import annotations

import json

import pytest
import yaml
from agent_e2e_conftest import ADMIN, wait_for
from agent_test_helpers import build
from jobs_e2e_helpers import admin_env, enroll, lines, start, stop

from liteship.agent.jobs import TEST_DELAY_ENV
from liteship.agent.jobs_validate import NOISE_ENV
from liteship.agent.profile import PROFILE_ENV
from liteship.agent.store import Store

MODEL = "pipevar"
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"], "cpu_model": "Cortex-A76"}
X86 = {"machine": "x86_64", "isa": ["sse4_2", "avx2"], "cpu_model": "gateway"}


@pytest.fixture(scope="module")
def agents(fleet, keys, golden, tflite_float, digit_pngs, tmp_path_factory):
    out = tmp_path_factory.mktemp("pkg")
    fleet.publish(
        build(tflite_float.read_bytes(), out, "1.0.0", keys.private_path, golden, model_id=MODEL), "stable"
    )
    base = tmp_path_factory.mktemp("agents")
    procs = {}
    for dev, env in (
        ("rv-pi5", {PROFILE_ENV: json.dumps(PI5), TEST_DELAY_ENV: "none.tflite=20"}),
        ("rv-x86", {PROFILE_ENV: json.dumps(X86), NOISE_ENV: "int8.tflite=3.0"}),
    ):
        state = enroll(fleet, keys, base / dev, dev, MODEL)
        sink = base / f"{dev}.jsonl"
        procs[dev] = (state, sink, start(state, digit_pngs, sink, env=env))
    for state, sink, _ in procs.values():
        wait_for(lambda s=state, k=sink: Store(s).current_version() == "1.0.0" and lines(k) > 0, timeout=120)
    yield procs
    for _, _, proc in procs.values():
        stop(proc)


def test_groups_that_choose_differently_get_one_release_of_variants(
    fleet, agents, keys, keras_path, calib_npy, val_npz, tmp_path, monkeypatch, cli
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
        "bench": {"threads": [1], "runs": 10, "min_seconds": 0, "devices": ["rv-pi5", "rv-x86"],
                  "device_timeout_s": 300},
        "gates": {"max_accuracy_drop": 5.0, "min_agreement": 0.9},
        "package": {"key": str(keys.private_path), "golden_samples": 4},
    }  # fmt: skip
    (tmp_path / "liteship.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("LITESHIP_SERVER", fleet.url)
    monkeypatch.setenv("LITESHIP_TOKEN", ADMIN)
    report = run_pipeline(tmp_path / "liteship.yaml", log=lambda _: None, progress=False)

    assert report.group_choices == {"aarch64+neon+dotprod": "int8", "x86_64+avx2": "none"}, (
        report.device_validation,
        report.device_selection,
    )
    (x86,) = [g for g in report.device_validation.groups if g.group == "x86_64+avx2"]
    assert x86.device == {"none": True, "int8": False}  # int8 out on the gateway's devices
    workstation = report.device_selection.workstation_chosen
    assert report.chosen == workstation and [v.recipe for v in report.release_variants if v.default] == [
        workstation
    ]
    names = {v.recipe: v.name for v in report.release_variants}
    assert names == {"none": "float32", "int8": "int8"}
    packages = sorted((tmp_path / "out").glob("*.lsp"))
    assert [p.name for p in packages] == [f"{MODEL}-1.1.0.float32.lsp", f"{MODEL}-1.1.0.int8.lsp"]

    r = cli("fleet", "publish", *map(str, packages), "--channel", "stable", env=admin_env(fleet))
    assert r.returncode == 0, r.stderr + r.stdout
    want = {"rv-pi5": "int8", "rv-x86": "float32"}
    for state, _, proc in agents.values():  # each agent installs the new release ...
        wait_for(lambda s=state: Store(s).current_version() == "1.1.0", timeout=180)
        assert proc.poll() is None

    def variants() -> dict[str, str | None]:
        return {d["id"]: d.get("variant") for d in fleet.devices() if d["id"] in want}

    wait_for(lambda: variants() == want, timeout=60)  # ... as the variant its hardware group chose
