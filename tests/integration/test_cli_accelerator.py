"""`--accelerator` on run, validate and bench, and `inspect --probe`, through the real console script."""

from __future__ import annotations

import json

import numpy as np
import pytest

MOBILENET = "mobilenet_v1_0.25_224_1_metadata_1.tflite"  # LiteRT's GPU rejects its SQUEEZE


def test_bench_times_the_compiled_model_per_accelerator(cli, tflite_static, gpu):
    p = cli(
        "bench", str(tflite_static), "--accelerator", "interpreter", "--accelerator", "cpu",
        "--accelerator", "cpu,gpu", "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    entries = json.loads(p.stdout)["entries"]
    assert [(e["accelerator"], e["timed"]) for e in entries] == [
        (None, "invoke"), ("cpu", "run"), ("gpu,cpu", "run+read"),
    ]  # fmt: skip
    assert entries[2]["fully_accelerated"] is True and "CompiledModel on gpu,cpu" in entries[2]["backend"]
    assert all(e["init_ms"] > 0 and e["first_inference_ms"] > 0 for e in entries)
    bad = cli("bench", str(tflite_static), "--accelerator", "tpu")
    assert bad.returncode == 2 and "unknown: tpu" in bad.stderr


def test_run_on_gpu_alone_names_the_rejected_op(cli, third_party_models, tmp_path, gpu):
    x = tmp_path / "x.npy"
    np.save(x, np.full((224, 224, 3), 128.0, np.float32))
    model = str(third_party_models / MOBILENET)
    p = cli("run", model, "--input", str(x), "--accelerator", "gpu")
    assert p.returncode == 1
    (line,) = p.stderr.strip().splitlines()  # one line, no traceback
    assert "rejects SQUEEZE" in line and "--accelerator 'gpu,cpu'" in line
    p = cli("run", model, "--input", str(x), "--accelerator", "gpu,cpu", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)  # nothing LiteRT prints natively gets into stdout
    assert d["accelerator"] == "gpu,cpu" and d["fully_accelerated"] is False and d["top_k"]


def test_inspect_probe_marks_probed_and_rules_verdicts(cli, third_party_models, gpu):
    model = str(third_party_models / MOBILENET)
    p = cli("inspect", model, "--target", "gpu", "--target", "edgetpu", "--probe", "--json")
    assert p.returncode == 0, p.stderr
    by = {v["target"]: v for v in json.loads(p.stdout)["targets"]}
    assert by["gpu"]["basis"] == "probed" and by["gpu"]["verdict"] == "partial"
    assert list(by["gpu"]["fallback_ops"]) == ["SQUEEZE"]
    assert by["gpu"]["total_ops"] == by["gpu"]["accelerated_ops"] + 2
    assert by["edgetpu"]["basis"] == "rules"
    p = cli("inspect", model, "--target", "gpu")
    assert p.returncode == 0 and "(from rules)" in p.stdout


def test_validate_gpu_against_the_interpreter(cli, tflite_static, val_npz, gpu):
    p = cli(
        "validate", str(tflite_static), "--reference", str(tflite_static), "--data", str(val_npz),
        "--accelerator", "gpu", "--atol", "0.005", "--min-agreement", "0.99", "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert "CompiledModel on gpu" in d["candidate_backend"] and "CompiledModel" not in d["reference_backend"]
    assert d["passed"] and 0 < d["outputs"][0]["max_abs_error"] <= 0.005  # float16 kernels, 500 samples


def test_npu_without_its_vendor_runtime_says_what_is_missing_and_npu_cpu_falls_back(
    cli, tflite_static, tmp_path
):
    from liteship.runtime.compiled import npu_unavailable

    why = npu_unavailable()
    if why is None:
        pytest.skip("an NPU dispatch library loads here: the no-NPU messages cannot be shown")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((8, 8, 1), np.float32))
    p = cli("run", str(tflite_static), "--input", str(x), "--accelerator", "npu")
    assert p.returncode == 1
    (line,) = p.stderr.strip().splitlines()  # one line, no traceback
    # what failed (no NPU, not "some ops are not accelerated"), what is missing, what to try
    assert "no usable NPU" in line and why in line and "--accelerator 'cpu'" in line and "'npu,cpu'" in line
    p = cli("run", str(tflite_static), "--input", str(x), "--accelerator", "npu,cpu", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["accelerator"] == "cpu" and "CompiledModel on cpu" in d["backend"]
    assert any("no usable NPU" in w and "Running on cpu" in w for w in d["warnings"])
