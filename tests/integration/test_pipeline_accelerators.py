"""The pipeline selects over (variant, accelerator) pairs (issue 15): each accelerator of
``bench.accelerators`` validates and times every variant for real, and the gates see its numbers.

The first two use the static-batch digits CNN as a float .tflite; the last a Keras source, whose dynamic
batch the runner fixes at 1 for the GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from liteship.pipeline import run_pipeline

pytestmark = pytest.mark.slow


def config(
    folder: Path, source: Path, calib_npy: Path, val_npz: Path, recipes, accelerators, **gates
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "source": str(source),
        "model_id": "digits",
        "version": "1.0.0",
        "output": "out",
        "recipes": recipes,
        "calibration": {"data": str(calib_npy), "samples": 50},
        "validation": {"data": str(val_npz)},
        "bench": {"threads": [1], "runs": 10, "warmup": 1, "min_seconds": 0, "accelerators": accelerators},
        "gates": {"min_agreement": 0.95, **gates},
    }
    path = folder / "liteship.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_pairs_are_validated_on_the_gpu_and_gated_on_its_numbers(
    gpu, tflite_static, calib_npy, val_npz, tmp_path
):
    # float32 on the Interpreter matches the source exactly (SQNR inf); on the GPU, fp16 kernels leave
    # ~58 dB: a 70 dB gate fails the GPU pair of the same file on its own numbers, and only there
    cfg = config(tmp_path, tflite_static, calib_npy, val_npz, ["none", "dynamic"], [None, "gpu"], min_sqnr=70)
    report = run_pipeline(cfg, log=lambda _: None, progress=False, raise_on_gate=False)
    assert [(r.recipe, r.accelerator) for r in report.accelerator_pairs] == [
        ("none", "gpu"),
        ("dynamic", "gpu"),
    ]
    for r in report.accelerator_pairs:
        assert r.ok and r.ran_on == "gpu" and r.fully_accelerated
        assert r.validation_samples == report.variant(r.recipe).validation_samples  # pruned ones: 50
        assert r.p50_ms and r.p50_ms > 0 and r.path == report.variant(r.recipe).path
    cpu, on_gpu = report.variant("none"), report.variant("none", "gpu")
    assert cpu.max_abs_error == 0 and cpu.gates_passed
    assert 0 < on_gpu.max_abs_error < 1e-2 and on_gpu.agreement_top1 == 1.0  # fp16, but the same answers
    assert on_gpu.sqnr_db < 70 and on_gpu.failures == [f"SQNR {on_gpu.sqnr_db:.1f} dB < min_sqnr 70.0"]
    assert (report.chosen, report.chosen_accelerator) == ("none", None)
    saved = json.loads(Path(report.report_json).read_text())
    assert saved["chosen_accelerator"] is None and len(saved["accelerator_pairs"]) == 2
    assert "none on gpu" in Path(report.report_html).read_text()


def test_without_a_gpu_the_gpu_pairs_say_why_and_a_cpu_pair_is_selected(
    tflite_static, calib_npy, val_npz, tmp_path, monkeypatch
):
    monkeypatch.setenv("VK_ICD_FILENAMES", "/nonexistent")  # no Vulkan device in the child process
    cfg = config(tmp_path, tflite_static, calib_npy, val_npz, ["none"], ["gpu", "cpu"])
    report = run_pipeline(cfg, log=lambda _: None, progress=False)
    on_gpu, on_cpu = report.accelerator_pairs
    assert on_gpu.accelerator == "gpu" and not on_gpu.ok and on_gpu.gates_passed is False
    assert "failed to initialise" in on_gpu.error and "No adapters found" in on_gpu.error
    assert on_cpu.ok and on_cpu.ran_on == "cpu" and on_cpu.gates_passed and on_cpu.max_abs_error < 1e-5
    assert (report.chosen, report.chosen_accelerator) == ("none", "cpu")
    interp = report.variant("none")  # measured, but not a candidate: the list has no null
    assert interp.ok and interp.gates_passed is None
    assert any("does not list the Interpreter" in w for w in report.warnings)


def test_a_keras_source_with_a_dynamic_batch_runs_its_gpu_pair_at_batch_1(
    gpu, keras_path, calib_npy, val_npz, tmp_path
):
    # TensorFlow's converter gives a Keras source a -1 batch and a run-time Flatten shape
    # (SHAPE → STRIDED_SLICE → PACK → RESHAPE); the GPU compiles static shapes only, so the runner
    # compiles a batch-1 copy (model.flatbuffer.batch_one_copy) and the pair is measured like any other
    cfg = config(tmp_path, keras_path, calib_npy, val_npz, ["none"], [None, "gpu"])
    report = run_pipeline(cfg, log=lambda _: None, progress=False, raise_on_gate=False)
    (pair,) = report.accelerator_pairs
    assert pair.ok and pair.ran_on == "gpu" and pair.fully_accelerated, pair.error
    assert 0 < pair.max_abs_error < 1e-2 and pair.agreement_top1 >= 0.99 and pair.gates_passed
