"""`graph_fixes.absorb_high_bias` and the repair fix `absorb_high_bias` in liteship.yaml: from the config to
the converter's keyword, and through the real converter."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.errors import UsageError
from liteship.pipeline.config import load_config
from liteship.pipeline.repair import SHORT
from liteship.pipeline.run import _Run
from liteship.pipeline.variant import Variant

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
    run = _Run(cfg, log=lambda _: None, progress=False)
    assert run._configured_fixes("int8") == ("absorb_high_bias",)
    assert run._configured_fixes("int16x8") == ()  # int8 ranges only: int16x8 would be a usage error
    assert run._configured_fixes("float16") == ()
    kwargs = run._convert_kwargs(Variant("int8", "int8", fixes=run._configured_fixes("int8")))
    assert kwargs["absorb_high_bias"] is True and kwargs["source"] == str(source)  # the Keras file
    kwargs["output"] = str(tmp_path / "int8.tflite")
    report = convert(**kwargs)
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
