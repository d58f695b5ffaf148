"""The pipeline's modules use the run (``pipeline.run._Run``) through its public methods and attributes:
none reaches into its ``_private`` state (``run._validation_data()`` once did, from two modules)."""

from __future__ import annotations

import ast
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[3] / "src" / "liteship" / "pipeline"


def test_no_pipeline_module_reaches_into_the_runs_private_state():
    offenders = []
    for path in sorted(PIPELINE.glob("*.py")):
        if path.name == "run.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("run", "owner")
                and node.attr.startswith("_")
            ):
                offenders.append(f"{path.name}:{node.lineno} run.{node.attr}")
    assert not offenders, offenders
    run = ast.parse((PIPELINE / "run.py").read_text())
    methods = {
        f.name for c in ast.walk(run) if isinstance(c, ast.ClassDef) and c.name == "_Run" for f in c.body
    }
    assert "validation_data" in methods
