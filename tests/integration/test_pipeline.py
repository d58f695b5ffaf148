"""The pipeline end to end on the tiny digits CNN: every stage's artifact exists and agrees with the others."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from liteship.errors import GateFailed, PipelineError, UsageError
from liteship.model.inspect import inspect_model
from liteship.model.metadata import labels_from_metadata, read_metadata
from liteship.package import generate_keypair, open_package, verify_package
from liteship.pipeline import run_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("keys")
    pair = generate_keypair(d / "liteship.key")
    return Path(pair.private_path), Path(pair.public_path)


def write_config(folder: Path, keras_path, calib_npy, val_npz, key, **overrides) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.txt").write_text("".join(f"digit {i}\n" for i in range(10)))
    cfg = {
        "source": str(keras_path),
        "model_id": "digits",
        "version": "1.2.3",
        "output": "out",
        "recipes": ["none", "dynamic", "int8"],
        "calibration": {"data": str(calib_npy), "samples": 100},
        "validation": {"data": str(val_npz)},
        "bench": {"threads": [1], "runs": 20, "min_seconds": 0.05},
        "gates": {"max_accuracy_drop": 3.0, "min_agreement": 0.95},
        "metadata": {"name": "Digits", "author": "tests", "license": "MIT", "labels": "labels.txt"},
        "package": {"key": str(key), "golden_samples": 4},
    }
    for k, v in overrides.items():
        cfg[k] = v
    path = folder / "liteship.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, keras_path, calib_npy, val_npz, keys):
    folder = tmp_path_factory.mktemp("pipeline")
    cfg = write_config(folder, keras_path, calib_npy, val_npz, keys[0])
    lines: list[str] = []
    report = run_pipeline(cfg, log=lines.append, progress=False)
    return folder, report, lines


def test_every_recipe_has_a_converted_validated_benchmarked_variant(run):
    folder, report, lines = run
    assert [v.recipe for v in report.variants] == ["none", "dynamic", "int8"]
    for v in report.variants:
        assert v.ok and Path(v.path).is_file() and Path(v.path).stat().st_size == v.size_bytes
        assert v.p50_ms is not None and v.p50_ms <= v.p95_ms <= v.p99_ms
        assert v.agreement_top1 is not None and 0.9 <= v.agreement_top1 <= 1.0
        assert v.gates_passed
    assert report.variant("none").agreement_top1 == 1.0
    assert report.variant("int8").ratio_to_float32 < 0.5
    assert any(line.startswith("convert") for line in lines) and any("select" in line for line in lines)


def test_the_chosen_variant_is_the_fastest_that_passes(run):
    _, report, _ = run
    passing = [v for v in report.variants if v.gates_passed]
    assert report.chosen == min(passing, key=lambda v: (v.p50_ms, v.size_bytes)).recipe


def test_shipped_model_has_metadata_and_is_the_chosen_variant(run):
    _, report, _ = run
    shipped = Path(report.chosen_model)
    meta = read_metadata(shipped)
    assert meta["name"] == "Digits" and meta["version"] == "1.2.3" and meta["author"] == "tests"
    assert labels_from_metadata(shipped) == [f"digit {i}" for i in range(10)]
    chosen = inspect_model(report.variant(report.chosen).path)
    assert inspect_model(shipped).ops == chosen.ops  # same graph, metadata added


def test_package_verifies_and_agrees_with_the_reports(run, keys):
    folder, report, _ = run
    pkg = Path(report.package["path"])
    manifest = verify_package(pkg, keys[1])
    assert manifest.model_id == "digits" and manifest.version == "1.2.3" and manifest.recipe == report.chosen
    shipped_sha = hashlib.sha256(Path(report.chosen_model).read_bytes()).hexdigest()
    assert manifest.files["model.tflite"].sha256 == shipped_sha
    v = report.variant(report.chosen)
    assert manifest.metrics["agreement_top1"] == pytest.approx(v.agreement_top1)
    assert manifest.metrics["p50_ms"] == pytest.approx(v.p50_ms)
    hist = manifest.reference_histogram
    assert sum(hist["counts"]) == report.variant(report.chosen).validation_samples
    package = open_package(pkg, keys[1])
    inputs, outputs = package.golden()
    assert next(iter(inputs.values())).shape[0] == 4 and all(np.isfinite(o).all() for o in outputs.values())


def test_report_json_and_html_are_written_and_consistent(run):
    folder, report, _ = run
    data = json.loads(Path(report.report_json).read_text())
    assert data["chosen"] == report.chosen
    assert [v["recipe"] for v in data["variants"]] == ["none", "dynamic", "int8"]
    html = Path(report.report_html).read_text()
    assert html.count("<svg") >= 3 and "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html
    for v in report.variants:
        assert v.recipe in html


def test_nothing_passes_exits_with_every_failure_and_no_package(
    tmp_path, keras_path, calib_npy, val_npz, keys
):
    cfg = write_config(
        tmp_path,
        keras_path,
        calib_npy,
        val_npz,
        keys[0],
        recipes=["none", "int8"],
        gates={"max_size_mb": 0.001, "min_agreement": 0.95},
    )
    with pytest.raises(GateFailed) as e:
        run_pipeline(cfg, log=lambda _: None, progress=False)
    assert len(e.value.failures) == 2 and all("max_size_mb" in f for f in e.value.failures)
    assert (tmp_path / "out" / "report.html").is_file()
    assert not list((tmp_path / "out").glob("*.lsp"))


def test_min_accuracy_stops_a_model_as_bad_as_its_reference(
    tmp_path, keras_path, calib_npy, val_npz, keys, cli
):
    """Issue 22 (9): with labels that no model gets right every relative gate passes (the variant is as
    bad as its reference); the absolute min_accuracy gate fails the run (exit 3) and nothing is packaged."""
    with np.load(val_npz) as d:
        np.savez(tmp_path / "wrong.npz", x=d["x"], y=(d["y"] + 1) % 10)
    cfg = write_config(
        tmp_path, keras_path, calib_npy, tmp_path / "wrong.npz", keys[0], recipes=["none"],
        gates={"max_accuracy_drop": 1.0, "min_agreement": 0.98, "min_accuracy": 0.9},
    )  # fmt: skip
    r = cli("pipeline", "run", str(cfg))
    assert r.returncode == 3, r.stderr
    assert "min_accuracy 0.9" in r.stderr and "the reference model scores" in r.stderr, r.stderr
    assert not list((tmp_path / "out").glob("*.lsp"))


def test_nchw_validation_data_stops_the_run_at_once(tmp_path, keras_path, calib_npy, val_npz, keys, cli):
    """Issue 22 (12): PyTorch-layout (NCHW) validation data ran every conversion and exited 3; it is now
    refused before any conversion (exit 1) with what to do."""
    with np.load(val_npz) as d:
        np.savez(tmp_path / "nchw.npz", x=np.transpose(d["x"], (0, 3, 1, 2)), y=d["y"])
    cfg = write_config(
        tmp_path, keras_path, calib_npy, tmp_path / "nchw.npz", keys[0], recipes=["none", "int8"]
    )
    r = cli("pipeline", "run", str(cfg))
    assert r.returncode == 1, r.stderr
    assert "channels-first (NCHW)" in r.stderr and "np.transpose(x, (0, 2, 3, 1))" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "digits.int8.tflite").exists()  # nothing was converted
    r = cli("validate", str(keras_path), "--reference", str(keras_path), "--data", str(tmp_path / "nchw.npz"))
    assert r.returncode == 1 and "Transpose it" in r.stderr, r.stderr


def test_when_plain_int8_passes_no_repair_or_search_runs(tmp_path, keras_path, calib_npy, val_npz, keys):
    cfg = write_config(
        tmp_path,
        keras_path,
        calib_npy,
        val_npz,
        keys[0],
        recipes=["int8"],
        auto_mixed_precision={"enabled": True},
    )
    lines: list[str] = []
    report = run_pipeline(cfg, log=lines.append, progress=False)
    mp = report.mixed_precision
    assert mp.base == "int8" and "already passes" in mp.skipped and mp.search is None and not mp.attempts
    assert [v.recipe for v in report.variants] == ["int8"] and report.chosen == "int8"
    assert not any(line.startswith("search") for line in lines)
    assert report.stage_seconds["mixed precision"] < 1.0  # a gate check, nothing converted


def test_config_errors(tmp_path):
    cfg = tmp_path / "liteship.yaml"
    cfg.write_text("source: nope.keras\nmodel_id: x\ncalibration: {data: c.npy}\nvalidation: {data: v.npz}\n")
    with pytest.raises(PipelineError, match="do not exist") as e:  # a missing input file: exit 1
        run_pipeline(cfg, log=lambda _: None)
    assert e.value.exit_code == 1
    cfg.write_text(
        "source: m.keras\nmodel_id: x\nversion: one\nrecipies: [int8]\ncalibration: {data: c.npy}\n"
    )
    with pytest.raises(UsageError) as e:  # an invalid config: exit 2, every problem listed
        run_pipeline(cfg, log=lambda _: None)
    msg = str(e.value)
    assert "did you mean 'recipes'" in msg and "semantic version" in msg and "validation: missing" in msg


def test_cli_pipeline_run_exit_codes(tmp_path, keras_path, calib_npy, val_npz, keys, cli):
    cfg = write_config(
        tmp_path, keras_path, calib_npy, val_npz, keys[0], recipes=["none"], gates={"max_size_mb": 0.001}
    )
    r = cli("pipeline", "run", str(cfg), "--json")
    assert r.returncode == 3, r.stderr
    data = json.loads(r.stdout)
    assert data["chosen"] is None and "max_size_mb" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("pipeline", "run", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_parallel_conversion_in_worker_processes(tmp_path, keras_path, calib_npy, val_npz, keys):
    # io_type uint8 is refused for int16x8: that worker's error is recorded, the others go on
    cfg = write_config(
        tmp_path,
        keras_path,
        calib_npy,
        val_npz,
        keys[0],
        recipes=["none", "int8", "int16x8"],
        convert_workers=2,
        io_type="uint8",
    )
    report = run_pipeline(cfg, log=lambda _: None, progress=False)
    assert report.variant("none").ok and report.variant("int8").ok
    bad = report.variant("int16x8")
    assert not bad.ok and "uint8" in bad.error and not bad.gates_passed
    assert report.chosen in ("none", "int8")
