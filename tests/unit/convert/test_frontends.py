"""One recipe × source table: each frontend declares its recipes and fixes; conversion dispatches on it."""

from __future__ import annotations

import pytest

from liteship.convert.converter import calibrated_model
from liteship.convert.frontends import FRONTENDS, SOURCE_FIXES, fix_problem, frontend_for
from liteship.convert.recipes import RECIPE_NAMES
from liteship.errors import UsageError


def test_every_recipe_has_a_frontend_and_every_source_kind_one_entry():
    assert set(FRONTENDS) == {"tensorflow", "tflite", "torch"}
    assert {r for f in FRONTENDS.values() for r in f.recipes} == set(RECIPE_NAMES)
    assert {k: f.fixes for k, f in FRONTENDS.items()} == SOURCE_FIXES
    assert "adaround" not in FRONTENDS["tensorflow"].fixes and "adaround" in FRONTENDS["tflite"].fixes


def test_dispatch_by_source_kind_never_imports_a_framework():
    assert frontend_for("m.keras").kind == "tensorflow"
    assert frontend_for("saved_model_dir").kind == "tensorflow"
    assert frontend_for("m.tflite").kind == "tflite"
    assert frontend_for("net.py:build").kind == "torch" and frontend_for("m.pt2").kind == "torch"


def test_a_fix_the_source_does_not_take_says_what_to_do():
    assert fix_problem("m.tflite", "adaround") is None
    assert "float .tflite" in (fix_problem("m.keras", "adaround") or "")
    assert "not a .keras/.h5" in (fix_problem("saved_model_dir", "equalize") or "")


def test_the_search_cannot_calibrate_a_pytorch_source_and_says_so(tmp_path):
    with pytest.raises(UsageError, match="not a torch source") as e:
        calibrated_model(str(tmp_path / "net.py") + ":build", quantize="int8", calibration="c.npy")
    assert "float .tflite" in (e.value.hint or "")
