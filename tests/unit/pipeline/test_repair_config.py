"""The accuracy repair's fixes in the pipeline config: range setting first, by name, checked."""

from __future__ import annotations

import pytest

from liteship.errors import UsageError
from liteship.pipeline.config import load_config
from liteship.pipeline.spec import VariantSpec

BASE = {"source": "m.keras", "model_id": "m", "calibration": {"data": "c"}, "validation": {"data": "v"}}


def test_the_repair_tries_range_setting_first_then_the_graph_fixes_then_learned_rounding():
    cfg = load_config({**BASE, "auto_mixed_precision": {"enabled": True}})
    assert cfg.auto_mixed_precision.repair == ["range_percentile", "equalize", "bias_correction", "adaround"]
    assert cfg.graph_fixes.range_setting == "minmax"  # plain TFLite unless asked


def test_a_variant_s_fixes_name_its_range_setting():
    int8 = VariantSpec("int8")
    assert int8.with_fixes(("range_percentile", "equalize")).range_setting == "percentile"
    assert int8.with_fixes(("range_mse",)).range_setting == "mse"
    assert int8.with_fixes(("equalize", "bias_correction")).range_setting == "minmax"
    assert int8.with_fixes(("range_mse", "equalize")).fixes == ("range_mse", "equalize")


def test_unknown_fixes_and_range_settings_are_usage_errors():
    with pytest.raises(UsageError, match="repair"):
        load_config({**BASE, "auto_mixed_precision": {"repair": ["range_max"]}})
    with pytest.raises(UsageError, match="range_setting"):
        load_config({**BASE, "graph_fixes": {"range_setting": "kl"}})
