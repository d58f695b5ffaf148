"""`import liteship.convert` stays cheap: TensorFlow is imported only when a conversion runs."""

from __future__ import annotations


def test_import_does_not_import_tensorflow(no_tf_python):
    result = no_tf_python(
        """
        import sys
        import liteship, liteship.convert
        from liteship.convert import RECIPES, ConversionReport, convert
        assert liteship.convert is not None and "int16x8" in RECIPES
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        from liteship.errors import UsageError
        try:
            convert("model.keras")
        except UsageError as e:
            print("usage:", e)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "usage: this needs TensorFlow" in result.stdout and "liteship[convert]" in result.stdout


def test_report_to_dict_is_json_and_leaves_out_bytes(saved_model_dir):
    import json

    from liteship.convert import convert

    report = convert(saved_model_dir, None)
    data = json.loads(json.dumps(report.to_dict()))
    assert "model_bytes" not in data and data["size_bytes"] == len(report.model_bytes)
    assert data["inputs"][0]["dtype"] == "float32" and data["method"] == "from_saved_model"
