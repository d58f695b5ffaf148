"""Real models from the wild (issue 20): every float model in tests/data/third_party goes through
``convert -q int8`` (compared with its float original on real photos it did not calibrate on),
``validate``, ``metadata write`` and ``pipeline run``; the uint8 QAT model and the Flex model get a
clear answer. Real files, real photos, ai-edge-quantizer and LiteRT; nothing is mocked.

The int8 figures are printed (``pytest -s``); only sane bounds are asserted: how good post-training int8
is on these models is issue 20's accuracy work, not this file's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("ai_edge_quantizer", reason="the quantizer extra (pip install 'liteship[quantizer]')")

from liteship.convert import convert  # noqa: E402
from liteship.errors import ConversionError, DataError, PipelineError  # noqa: E402
from liteship.model import metadata as M  # noqa: E402
from liteship.validate import validate  # noqa: E402

MOBILENET = "mobilenet_v1_0.25_224_1_metadata_1.tflite"
QAT = "mobilenet_v1_0.25_224_quant.tflite"
FLEX = "whitespace_tokenizer_flex_delegate.tflite"
# name → the preprocessing to give (None: the model declares it in its TFLite metadata). MediaPipe's
# files declare none; their graphs apply what tests/data/third_party/README.md lists.
FLOAT_MODELS = {
    MOBILENET: None,
    "blazeface_face_detection_front_128_float.tflite": {"mean": 127.5, "std": 127.5},
    "hand_landmark_224_float.tflite": {"mean": 0.0, "std": 255.0},
    "pose_detection_128_float.tflite": {"mean": 127.5, "std": 127.5},
}


@pytest.fixture(scope="module")
def photos(third_party_models, tmp_path_factory) -> tuple[Path, Path]:
    """(calibration, validation): real hand photos, call/four to calibrate, none/rock to compare."""
    root = tmp_path_factory.mktemp("photos")
    for name, folders in (("cal", ("call", "four")), ("val", ("none", "rock"))):
        (root / name).mkdir()
        for folder in folders:
            for photo in sorted((third_party_models / "photos" / folder).glob("*.jpg")):
                shutil.copy(photo, root / name / photo.name)
    return root / "cal", root / "val"


@pytest.fixture(scope="module")
def int8_models(third_party_models, photos, tmp_path_factory) -> dict[str, tuple[Path, object]]:
    out = tmp_path_factory.mktemp("int8")
    made = {}
    for name, pre in FLOAT_MODELS.items():
        path = out / name.replace(".tflite", ".int8.tflite")
        rep = convert(
            third_party_models / name, path, quantize="int8", calibration=str(photos[0]), preprocessing=pre
        )
        made[name] = path, rep
    return made


@pytest.mark.parametrize("name", FLOAT_MODELS)
def test_int8_of_a_real_model_against_its_float_original(name, int8_models, third_party_models, photos):
    path, rep = int8_models[name]
    assert rep.source_normalization["op_codes_fixed"] > 0  # every one of them is a legacy file
    assert rep.source_normalization["signature_added"] == "serving_default"
    source = "from the model's TFLite metadata" if FLOAT_MODELS[name] is None else "given explicitly"
    assert source in rep.preprocessing_rule and "raw pixels 0–255" in rep.preprocessing_rule
    assert rep.calibration_samples == 6 and rep.ops.get("CONV_2D", 0) > 0

    v = validate(path, third_party_models / name, str(photos[1]), progress=False)
    assert v.samples == 6 and v.preprocessing_from == "candidate metadata"  # the rule convert stored
    figures = ", ".join(f"{o.name} SQNR {o.sqnr_db:.1f} dB" for o in v.outputs)
    figures += "".join(f", {a.output} top-1 agreement {a.top1:.0%}" for a in v.agreement)
    print(f"\n{name} int8 vs float on {v.samples} real photos: {figures}")
    # sane bounds only: finite figures, and the best output follows float better than zeros would
    assert all(np.isfinite(o.sqnr_db) for o in v.outputs) and max(o.sqnr_db for o in v.outputs) > 0


@pytest.mark.parametrize("name", FLOAT_MODELS)
def test_metadata_written_onto_a_real_model_keeps_files_and_outputs(name, int8_models, photos, tmp_path):
    for model in (int8_models[name][0], Path(int8_models[name][0]).parent.parent / name):
        if not model.exists():  # the float original: from the test data
            model = Path(__file__).parents[1] / "data" / "third_party" / name
        out = tmp_path / f"md-{model.name}"
        M.write_metadata(model, out, name="real", version="1.0.0", author="liteship tests")
        assert M.read_metadata(out)["name"] == "real"
        assert M.associated_files(out) == M.associated_files(model)  # labels.txt stays on MobileNet
        assert M.normalization_from_metadata(out) == M.normalization_from_metadata(model)
        same = validate(out, model, str(photos[1]), progress=False)
        assert all(o.identical for o in same.outputs), [o.max_abs_error for o in same.outputs]
    assert (M.labels_from_metadata(out) is not None) == (name == MOBILENET)


def test_cli_on_mobilenet_says_which_rule_and_normalizations(cli, third_party_models, photos, tmp_path):
    out = tmp_path / "mnv1.int8.tflite"
    r = cli(
        "convert",
        str(third_party_models / MOBILENET),
        "-o",
        str(out),
        "-q",
        "int8",
        "--calibration",
        str(photos[0]),
    )
    assert r.returncode == 0, r.stderr
    assert (
        "preprocessing: mean 127.5 std 127.5 from the model's TFLite metadata; data read as raw pixels"
        in r.stdout
    )
    assert "source normalized: op codes of 5 operator type(s)" in " ".join(r.stdout.split())
    r = cli(
        "validate", str(out), "--reference", str(third_party_models / MOBILENET), "--data", str(photos[1])
    )
    assert r.returncode == 0, r.stderr
    assert "mean 127.5 std 127.5 from the model's liteship record" in " ".join(r.stdout.split())


def test_already_normalized_calibration_data_stop_convert(third_party_models, tmp_path):
    """The model's rule expects pixels 0–255; floats in [-1, 1] normalized again would all be ≈ -1."""
    calib = tmp_path / "normalized.npy"
    np.save(calib, np.random.default_rng(0).uniform(-1, 1, (4, 224, 224, 3)).astype(np.float32))
    with pytest.raises(DataError, match="look normalized already") as e:
        convert(third_party_models / MOBILENET, tmp_path / "x.tflite", quantize="int8", calibration=calib)
    assert "TFLite metadata" in e.value.message and "--mean 0 --std 1" in (e.value.hint or "")
    rep = convert(  # an explicit override is the way out, and it is said
        third_party_models / MOBILENET,
        tmp_path / "x.tflite",
        quantize="int8",
        calibration=calib,
        preprocessing={"mean": 0.0, "std": 1.0},
        progress=False,
    )
    assert rep.preprocessing_rule.startswith("no normalization (given explicitly)")


def test_uint8_and_flex_models_get_a_clear_answer(third_party_models, photos, tmp_path):
    qat, flex = third_party_models / QAT, third_party_models / FLEX
    with pytest.raises(ConversionError, match="already quantized"):
        convert(qat, tmp_path / "q.tflite", quantize="int8", calibration=str(photos[0]))
    with pytest.raises(
        ConversionError, match=r"Select TensorFlow \(Flex\) ops .* recipe 'int8' does not apply"
    ):
        convert(flex, tmp_path / "f.tflite", quantize="int8", calibration=str(photos[0]))
    # what does apply: the QAT model validates against its float twin with the same (declared) rule
    v = validate(qat, third_party_models / MOBILENET, str(photos[1]), progress=False)
    assert v.preprocessing_from == "candidate TFLite metadata" and v.agreement[0].top1 > 0
    print(f"\nQAT uint8 twin vs float on {v.samples} photos: top-1 agreement {v.agreement[0].top1:.0%}")
    for model in (qat, flex):  # and metadata write keeps them readable
        out = tmp_path / f"md-{model.name}"
        M.write_metadata(model, out, name="kept")
        assert M.associated_files(out) == M.associated_files(model)


def _config(folder: Path, source: Path, photos: tuple[Path, Path], key: str | None, pre=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "source": str(source),
        "model_id": "real",
        "recipes": ["none", "int8"],
        "calibration": {"data": str(photos[0]), "samples": 6},
        "validation": {"data": str(photos[1])},
        "bench": {"threads": [1], "runs": 3, "warmup": 1, "min_seconds": 0.0},
        "gates": {"max_accuracy_drop": None, "min_agreement": None},
        "package": {"key": key, "golden_samples": 2},
    }
    if pre:
        cfg["preprocessing"] = pre
    path = folder / "liteship.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", FLOAT_MODELS)
def test_pipeline_runs_on_a_real_model(name, third_party_models, photos, tmp_path):
    from liteship.package import generate_keypair, verify_package
    from liteship.pipeline import run_pipeline

    keys = generate_keypair(tmp_path / "k.key")
    cfg = _config(tmp_path / "p", third_party_models / name, photos, keys.private_path, FLOAT_MODELS[name])
    report = run_pipeline(cfg, log=lambda _m: None, progress=False)
    by = {v.recipe: v for v in report.variants}
    assert by["none"].ok and by["int8"].ok, (by["none"].error, by["int8"].error)
    assert report.chosen in ("none", "int8") and report.package is not None
    verify_package(report.package["path"], keys.public_path)
    assert report.source_normalization["op_codes_fixed"] > 0
    expected = "metadata" if FLOAT_MODELS[name] is None else "override"
    assert report.preprocessing["source"] == expected and "raw pixels" in report.preprocessing["text"]
    shipped = Path(report.chosen_model)
    assert M.associated_files(shipped) == M.associated_files(third_party_models / name)
    mean = M.normalization_from_metadata(shipped).mean
    assert mean == ((127.5,) if FLOAT_MODELS[name] is None else (float(FLOAT_MODELS[name]["mean"]),))


def test_pipeline_refuses_uint8_and_flex_sources_at_once(third_party_models, photos, tmp_path):
    from liteship.pipeline import run_pipeline

    for model, why in ((QAT, "already quantized"), (FLEX, "Select TensorFlow")):
        cfg = _config(tmp_path / model, third_party_models / model, photos, None)
        with pytest.raises(PipelineError, match=why) as e:
            run_pipeline(cfg, log=lambda _m: None, progress=False)
        assert "reference" in e.value.message and not (tmp_path / model / "out").exists()


def test_pipeline_stops_on_data_that_do_not_fit_the_models_rule(third_party_models, photos, tmp_path):
    """MobileNet declares mean/std 127.5 on pixels: normalized floats stop the run before any conversion."""
    from liteship.pipeline import run_pipeline

    normalized = tmp_path / "normalized.npy"
    np.save(normalized, np.random.default_rng(0).uniform(-1, 1, (4, 224, 224, 3)).astype(np.float32))
    cfg = _config(tmp_path / "p", third_party_models / MOBILENET, (normalized, photos[1]), None)
    with pytest.raises(DataError, match="look normalized already"):
        run_pipeline(cfg, log=lambda _m: None, progress=False)
    assert not (tmp_path / "p" / "out").exists()


def test_run_says_the_rule_and_warns_when_a_model_declares_none(third_party_models):
    from liteship.runtime.predict import predict

    photo = sorted((third_party_models / "photos" / "call").glob("*.jpg"))[0]
    declared = predict(third_party_models / MOBILENET, photo, top_k=1)
    assert declared.describe_preprocessing() == (
        "mean 127.5 std 127.5 from the model's TFLite metadata; data read as raw pixels 0–255"
    )
    assert declared.top_k[0].label is not None and not declared.warnings  # labels.txt from the zip
    blaze = "blazeface_face_detection_front_128_float.tflite"
    bare = predict(third_party_models / blaze, photo)
    assert any("declares no preprocessing" in w for w in bare.warnings)
    told = predict(third_party_models / blaze, photo, mean=127.5, std=127.5)
    assert (
        told.describe_preprocessing().startswith("mean 127.5 std 127.5 given explicitly")
        and not told.warnings
    )
