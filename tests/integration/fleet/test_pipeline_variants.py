"""Issue 24.1: `pipeline run` writes a multi-variant release from the per-group choice — one signed
package per chosen variant, the workstation's choice the default — that the fleet takes as one release,
assigning each device the variant its hardware group chose. The device stages are stubbed here (their
fleet end to end is tests/e2e/jobs/test_pipeline_device_gate.py); the conversion, selection,
packaging and publishing are real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from liteship.errors import GateFailed
from liteship.package import open_package
from liteship.pipeline import run_pipeline
from liteship.pipeline.device_gate import DeviceGate, GroupVerdict, Queued
from liteship.pipeline.device_select import DeviceSelection, GroupChoice

pytestmark = pytest.mark.slow
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"], "litert": "1.4.0"}
AVX2 = {"machine": "x86_64", "isa": ["avx2", "fma"], "litert": "1.4.0"}


def config(folder: Path, keras_path, calib_npy, val_npz, key: Path) -> Path:
    cfg = {
        "source": str(keras_path),
        "model_id": "digits",
        "version": "2.0.0",
        "output": "out",
        "recipes": ["none", "int8"],
        "calibration": {"data": str(calib_npy), "samples": 100},
        "validation": {"data": str(val_npz), "samples": 100, "devices": []},
        "bench": {"threads": [1], "runs": 10, "min_seconds": 0, "devices": ["pi-5", "nuc"]},
        "gates": {"max_accuracy_drop": 5.0, "min_agreement": 0.9},
        "package": {"key": str(key), "golden_samples": 4},
    }
    path = folder / "liteship.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def stub_devices(monkeypatch, groups: dict[str, str]) -> None:
    """The device bench answers with ``groups`` (hardware group → the variant its devices chose)."""

    def select(report, bench, log, *, per_group=False):
        assert per_group  # the pipeline always asks for the per-group choice
        return DeviceSelection(
            job_id="job-bench", chosen=report["chosen"], workstation_chosen=report["chosen"], basis="device",
            fallback=False, message="stub", variants=[],
            groups=[GroupChoice(g, [f"{g}-1"], c, {}) for g, c in groups.items()],
        )  # fmt: skip

    monkeypatch.setattr("liteship.pipeline.device_select.select_in_pipeline", select)


def test_groups_that_chose_differently_get_a_release_of_variants(
    sqlite_fleet, keys, keras_path, calib_npy, val_npz, tmp_path, monkeypatch
):
    from liteship.cli.fleet import _default_variant_first

    stub_devices(monkeypatch, {"aarch64+neon+dotprod": "int8", "x86_64+avx2": "none"})
    report = run_pipeline(
        config(tmp_path, keras_path, calib_npy, val_npz, Path(keys["good"].private_path)),
        log=lambda _: None,
        progress=False,
    )
    workstation = report.device_selection.workstation_chosen
    assert report.group_choices == {"aarch64+neon+dotprod": "int8", "x86_64+avx2": "none"}
    by_recipe = {v.recipe: v for v in report.release_variants}
    assert set(by_recipe) == {"none", "int8"} and report.chosen == workstation
    assert [v.recipe for v in report.release_variants if v.default] == [workstation]
    assert by_recipe["int8"].when == [{"machine": ["aarch64"], "isa": ["neon", "dotprod"]}]
    assert by_recipe["none"].name == "float32" and by_recipe["none"].groups == ["x86_64+avx2"]
    out = tmp_path / "out"
    packages = sorted(out.glob("*.lsp"))  # no plain package beside the variants: out/*.lsp is the release
    assert [p.name for p in packages] == ["digits-2.0.0.float32.lsp", "digits-2.0.0.int8.lsp"]
    assert report.package["path"] == by_recipe[workstation].package["path"]
    for v in report.release_variants:
        manifest = open_package(v.package["path"], keys["good"].public_path).manifest
        assert manifest.metrics["recipe"] == v.recipe
        assert manifest.variant == {"name": v.name, "default": v.default, "when": v.when}

    saved = json.loads((out / "report.json").read_text())
    assert [v["name"] for v in saved["release_variants"]] == [v.name for v in report.release_variants]
    page = (out / "report.html").read_text()
    assert page.count('id="release-variants"') == 1 and "liteship fleet publish" in page

    for p in _default_variant_first(tuple(str(p) for p in packages)):  # as `fleet publish out/*.lsp`
        r = sqlite_fleet.publish(Path(p))
        assert r.status_code == 201, r.text
    assert {v["name"] for v in r.json()["variants"]} == {"float32", "int8"}
    for device, profile, variant in (("pi-5", PI5, "int8"), ("nuc", AVX2, "float32")):
        headers = sqlite_fleet.register(device)
        body = {"model_id": "digits", "model_version": None, "runtime": profile}
        a = sqlite_fleet.client.post(f"/api/v1/devices/{device}/checkin", json=body, headers=headers).json()
        assert (a["version"], a["variant"]) == ("2.0.0", variant), a


def test_a_group_where_no_variant_passes_on_its_devices_exits_3_after_writing_the_reports(
    keys, keras_path, calib_npy, val_npz, tmp_path, monkeypatch
):
    stub_devices(monkeypatch, {"aarch64+neon": "int8", "x86_64+avx2": "int8"})
    bad = ["on aarch64+neon: output 'y': top-1 agreement 0.40 < min_agreement 0.9"]
    monkeypatch.setattr(
        "liteship.pipeline.device_gate.queue_in_pipeline", lambda *a, **k: Queued(job_id="job-val")
    )
    monkeypatch.setattr(
        "liteship.pipeline.device_gate.gate_in_pipeline",
        lambda *a, **k: DeviceGate(
            "job-val", {"min_agreement": 0.9},
            [GroupVerdict("aarch64+neon", ["pi-4"], {"int8": True, "none": True}, {"int8": False, "none": False},
                          {"int8": bad, "none": bad}, None),
             GroupVerdict("x86_64+avx2", ["nuc"], {"int8": True, "none": True}, {"int8": True, "none": True},
                          {}, "int8")],
        ),
    )  # fmt: skip
    path = config(tmp_path, keras_path, calib_npy, val_npz, Path(keys["good"].private_path))
    raw = yaml.safe_load(path.read_text())
    raw["validation"]["devices"] = ["pi-4", "nuc"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(GateFailed, match="no variant passes the gates on the devices of aarch64\\+neon") as e:
        run_pipeline(path, log=lambda _: None, progress=False)
    report = e.value.report
    assert report.group_choices == {"aarch64+neon": None, "x86_64+avx2": "int8"}
    assert report.chosen == "int8" and report.release_variants == []  # the one group that passes agrees
    assert any("top-1 agreement 0.40" in f for f in e.value.failures)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["device_validation"]["groups"][0]["chosen"] is None
