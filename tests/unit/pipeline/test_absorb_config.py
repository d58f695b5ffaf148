"""`graph_fixes.absorb_high_bias` and the repair fix `absorb_high_bias` in liteship.yaml: from the config to
the converter's keyword, and through the real converter."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.errors import UsageError
from liteship.pipeline.config import load_config
from liteship.pipeline.spec import SHORT, VariantSpec

BASE = {"model_id": "m", "validation": {"data": "v"}}


def test_graph_fixes_absorb_reaches_the_int8_conversions_only(tmp_path, digits, high_bias_model):
    from liteship.convert import convert

    source = tmp_path / "hb.keras"
    high_bias_model.save(source)
    np.save(tmp_path / "calib.npy", digits[0][:50])
    cfg = load_config(
        {
            **BASE,
            "source": str(source),
            "calibration": {"data": str(tmp_path / "calib.npy")},
            "recipes": ["int8", "int16x8", "float16"],
            "graph_fixes": {"absorb_high_bias": True},
        }
    )
    spec = VariantSpec.configured("int8", cfg)
    assert spec.fixes == ("absorb_high_bias",) and spec.rewrites_weights  # converts the Keras file
    assert (
        VariantSpec.configured("int16x8", cfg).fixes == ()
    )  # int8 ranges only: int16x8 would be a usage error
    assert VariantSpec.configured("float16", cfg).fixes == ()
    options = spec.fix_options()
    assert options["absorb_high_bias"] is True and options["quantize"] == "int8"
    report = convert(
        source, tmp_path / "int8.tflite", calibration=tmp_path / "calib.npy", progress=False, **options
    )
    assert "absorb_high_bias" in (report.graph_fixes or {})
    assert report.graph_fixes["absorb_high_bias"]["pairs"][0]["first"] == "c1"


def test_the_repair_accepts_absorb_high_bias_by_name():
    cfg = load_config(
        {
            **BASE,
            "source": "m.keras",
            "calibration": {"data": "c"},
            "auto_mixed_precision": {"enabled": True, "repair": ["equalize", "absorb_high_bias"]},
        }
    )
    assert cfg.auto_mixed_precision.repair == ["equalize", "absorb_high_bias"]
    assert SHORT["absorb_high_bias"] == "hb"  # its variant is int8+eq+hb
    with pytest.raises(UsageError, match="graph_fixes"):
        load_config(
            {**BASE, "source": "m.keras", "calibration": {"data": "c"}, "graph_fixes": {"absorb": True}}
        )
