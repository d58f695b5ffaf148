"""Every recipe `liteship convert` takes is a liteship.yaml recipe: the weight-only ones too."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from liteship.convert.recipes import RECIPE_NAMES, RECIPES, resolve_recipe
from liteship.convert.tflite_quant import TFLITE_RECIPES
from liteship.errors import UsageError
from liteship.package import generate_keypair
from liteship.pipeline import load_config, run_pipeline


def test_the_config_accepts_every_convert_recipe_and_keeps_its_default_list(tmp_path):
    assert set(RECIPE_NAMES) == set(RECIPES) | set(TFLITE_RECIPES)
    base = {
        "source": "m.tflite",
        "model_id": "m",
        "calibration": {"data": "c.npy"},
        "validation": {"data": "v.npz"},
    }
    assert load_config({**base, "recipes": list(RECIPE_NAMES)}).recipes == list(RECIPE_NAMES)
    assert "weight-int8" not in load_config(base).recipes  # additive: the default is unchanged
    with pytest.raises(UsageError, match="weight-int8"):  # the message lists the accepted names
        load_config({**base, "recipes": ["weight-int2"]})


def test_a_weight_only_recipe_on_a_keras_source_says_what_to_do():
    with pytest.raises(UsageError, match="float .tflite or a PyTorch source") as e:
        resolve_recipe("weight-int4", None)
    assert "recipe none first" in (e.value.hint or "")


@pytest.mark.slow
def test_pipeline_converts_validates_and_benchmarks_weight_only_recipes(
    tmp_path, tflite_float, calib_npy, val_npz
):
    pytest.importorskip("ai_edge_quantizer")
    keys = generate_keypair(tmp_path / "k.key")
    cfg = {
        "source": str(tflite_float),
        "model_id": "digits",
        "recipes": ["weight-int8", "weight-int4"],
        "calibration": {"data": str(calib_npy), "samples": 20},
        "validation": {"data": str(val_npz), "samples": 100},
        "bench": {"threads": [1], "runs": 5, "min_seconds": 0.01},
        "gates": {"max_accuracy_drop": 5.0, "min_agreement": 0.9},
        "package": {"key": str(keys.private_path), "golden_samples": 2},
    }
    path = Path(tmp_path / "liteship.yaml")
    path.write_text(yaml.safe_dump(cfg))
    report = run_pipeline(path, log=lambda _m: None, progress=False)
    by = {v.recipe: v for v in report.variants}
    for recipe in ("weight-int8", "weight-int4"):
        v = by[recipe]
        assert v.ok, v.error
        assert v.agreement_top1 is not None and v.agreement_top1 >= 0.9  # validated against the float model
        assert v.p50_ms is not None and v.p50_ms > 0  # benchmarked
        assert v.ratio_to_float32 is not None and v.ratio_to_float32 < 0.6  # weights really quantized
    assert by["weight-int4"].ratio_to_float32 < by["weight-int8"].ratio_to_float32
    assert report.chosen in ("weight-int8", "weight-int4")
