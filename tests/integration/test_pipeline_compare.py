"""`liteship pipeline compare` refuses bad input with one line (the figures are checked end to end in
tests/e2e/agent/test_field_loop_e2e.py)."""

from __future__ import annotations

import json

import numpy as np


def test_bad_input_is_one_line(cli, tmp_path):
    data = tmp_path / "field.npz"
    np.savez(data, x=np.zeros((2, 8, 8, 1), np.float32))
    r = cli("pipeline", "compare", str(tmp_path / "nope.json"), "--data", f"field={data}")
    assert r.returncode == 1 and "cannot read the pipeline report" in r.stderr and "Traceback" not in r.stderr
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps({"variants": [{"recipe": "int8", "ok": True, "path": str(tmp_path / "gone.tflite")}]})
    )
    r = cli("pipeline", "compare", str(report), "--data", f"field={tmp_path / 'missing.npz'}")
    assert r.returncode == 2 and "data set 'field'" in r.stderr and "does not exist" in r.stderr
    r = cli(
        "pipeline", "compare", str(report), "--data", f"field={data}", "--release", str(tmp_path / "x.tflite")
    )
    assert r.returncode == 2 and "--release" in r.stderr
    r = cli("pipeline", "compare", str(report), "--data", f"field={data}")
    assert r.returncode == 1 and "no variant file" in r.stderr and "Traceback" not in r.stderr
    r = cli("pipeline", "compare", str(report), "--data", "=x")
    assert r.returncode == 2 and "expected NAME=PATH" in r.stderr
