"""The accuracy repair's fixes in the pipeline config: range setting first, by name, checked."""

from __future__ import annotations

import pytest

from liteship.errors import UsageError
from liteship.pipeline.config import load_config, range_setting_of

BASE = {"source": "m.keras", "model_id": "m", "calibration": {"data": "c"}, "validation": {"data": "v"}}


def test_the_repair_tries_range_setting_first_then_the_graph_fixes_then_learned_rounding():
    cfg = load_config({**BASE, "auto_mixed_precision": {"enabled": True}})
    assert cfg.auto_mixed_precision.repair == ["range_percentile", "equalize", "bias_correction", "adaround"]
    assert cfg.graph_fixes.range_setting == "minmax"  # plain TFLite unless asked


def test_a_variant_s_fixes_name_its_range_setting():
    assert range_setting_of(("range_percentile", "equalize")) == "percentile"
    assert range_setting_of(("range_mse",)) == "mse"
    assert range_setting_of(("equalize", "bias_correction")) == "minmax"


def test_unknown_fixes_and_range_settings_are_usage_errors():
    with pytest.raises(UsageError, match="repair"):
        load_config({**BASE, "auto_mixed_precision": {"repair": ["range_max"]}})
    with pytest.raises(UsageError, match="range_setting"):
        load_config({**BASE, "graph_fixes": {"range_setting": "kl"}})
