"""Issue 21 item 15: a path that does not exist is bad input, exit 1, for every command.

docs/decisions.md (issue 21) records the choice: 1 is the project's code for input that cannot be used;
2 stays for flags and values that can never work. A missing path given to any command that reads one
says which path and exits 1 with one ``error:`` line (no usage banner, no traceback).
"""

from __future__ import annotations

import pytest

COMMANDS = [
    ("inspect", "{missing}"),
    ("run", "{missing}", "--input", "{missing}"),
    ("convert", "{missing}", "-o", "{tmp}/out.tflite"),
    ("validate", "{missing}", "--reference", "{missing}", "--data", "{missing}"),
    ("bench", "{missing}"),
    ("metadata", "show", "{missing}"),
    ("pipeline", "run", "{missing}"),
    ("pipeline", "select", "{missing}", "--job", "job-x"),
    ("verify", "{missing}", "--key", "{missing}"),
    ("package", "{missing}", "--id", "m", "--version", "1.0.0", "--key", "{missing}", "-o", "{tmp}/p.lsp"),
    ("agent", "install", "--state-dir", "{tmp}/state", "{missing}"),
    ("agent", "enroll", "--state-dir", "{tmp}/state", "--server", "http://127.0.0.1:9",
     "--enrollment-token", "t", "--device-id", "d", "--key", "{missing}"),
    ("fleet", "publish", "{missing}"),
    ("fleet", "bench", "{missing}", "--device", "a"),
]  # fmt: skip


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(w for w in a[:2] if "{" not in w))
def test_a_missing_path_exits_1_with_one_line_naming_it(cli, tmp_path, args):
    missing = tmp_path / "no-such-file.bin"
    argv = [a.format(missing=missing, tmp=tmp_path) for a in args]
    r = cli(*argv, env={"LITESHIP_TOKEN": "t" * 32, "LITESHIP_SERVER": "http://127.0.0.1:9"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "does not exist" in lines[0] or "No such file" in lines[0], lines[0]
    assert str(missing) in " ".join(r.stderr.split()) or missing.name in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "Usage:" not in r.stderr
    assert not (tmp_path / "state").exists()
