"""The pipeline from a PyTorch source (module.py:factory) and from a float .tflite (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from liteship.package import generate_keypair, verify_package
from liteship.pipeline import run_pipeline

pytestmark = pytest.mark.slow


def _config(folder: Path, source: str, calib_npy, val_npz, key: Path, recipes: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "source": source,
        "model_id": "digits",
        "version": "1.0.0",
        "recipes": recipes,
        "calibration": {"data": str(calib_npy), "samples": 50},
        "validation": {"data": str(val_npz)},
        "bench": {"threads": [1], "runs": 10, "min_seconds": 0.02},
        "gates": {"max_accuracy_drop": 5.0, "min_agreement": 0.9},
        "package": {"key": str(key), "golden_samples": 2},
    }
    path = folder / "liteship.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_pipeline_from_a_pytorch_factory(tmp_path, torch_digits, calib_npy, val_npz):
    pytest.importorskip("litert_torch")
    net_py, _ = torch_digits
    keys = generate_keypair(tmp_path / "k.key")
    cfg = _config(
        tmp_path / "p",
        f"{net_py}:build_with_samples",
        calib_npy,
        val_npz,
        Path(keys.private_path),
        ["none", "int8"],
    )
    report = run_pipeline(cfg, log=lambda _m: None, progress=False)
    assert report.chosen in ("none", "int8")
    by = {v.recipe: v for v in report.variants}
    assert by["none"].ok and by["int8"].ok, (by["none"].error, by["int8"].error)
    assert by["none"].agreement_top1 == pytest.approx(1.0, abs=0.01)  # float32 .tflite == the module
    assert by["int8"].agreement_top1 >= 0.9 and by["int8"].p50_ms is not None
    verify_package(report.package["path"], keys.public_path)


def test_pipeline_from_a_float_tflite(tmp_path, tflite_float, calib_npy, val_npz):
    pytest.importorskip("ai_edge_quantizer")
    keys = generate_keypair(tmp_path / "k.key")
    cfg = _config(
        tmp_path / "p", str(tflite_float), calib_npy, val_npz, Path(keys.private_path), ["int8", "dynamic"]
    )
    report = run_pipeline(cfg, log=lambda _m: None, progress=False)
    assert report.chosen in ("int8", "dynamic")
    by = {v.recipe: v for v in report.variants}
    assert by["int8"].ok and by["dynamic"].ok, (by["int8"].error, by["dynamic"].error)
    assert by["int8"].agreement_top1 >= 0.95 and by["int8"].ratio_to_float32 < 0.5
    verify_package(report.package["path"], keys.public_path)
