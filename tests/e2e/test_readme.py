"""The README's tested command block runs, line by line, as a newcomer would run it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

pytestmark = pytest.mark.slow


def _tested_commands() -> list[str]:
    text = README.read_text()
    assert "<!-- tested -->" in text, "the README lost its tested block"
    block = text.split("<!-- tested -->", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [re.split(r"\s{2,}#", line)[0].strip() for line in block.strip().splitlines()]
    return [c for c in commands if c and not c.startswith("#")]


def test_readme_names_the_two_commands_and_the_makefile_has_them():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    targets = re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), flags=re.M)
    assert {"demo", "test"} <= set(targets)
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_readme_tour_runs(tmp_path):
    shutil.copytree(
        REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("work", "out", "__pycache__")
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    commands = _tested_commands()
    assert len(commands) >= 8
    for cmd in commands:
        r = subprocess.run(
            cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr, f"{cmd}\n{r.stderr[-2000:]}"
    assert (tmp_path / "tour" / "digits-1.0.0.lsp").is_file()
    assert (tmp_path / "examples" / "digits" / "out" / "report.html").is_file()
