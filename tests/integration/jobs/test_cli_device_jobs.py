"""`liteship fleet validate` / `fleet profile` on bad input: one line, the right exit code, no traceback."""

from __future__ import annotations

import pytest

from .conftest import MODEL_FILE


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("fleet", "validate", str(MODEL_FILE), "--data", str(MODEL_FILE)), 2, "exactly one of --device"),
        (("fleet", "validate", str(MODEL_FILE), "--device", "a"), 2, "--data"),
        (
            ("fleet", "validate", str(MODEL_FILE), "--data", "nothere.npz", "--device", "a"),
            2,
            "does not exist",
        ),
        (
            (
                "fleet",
                "validate",
                str(MODEL_FILE),
                "--data",
                str(MODEL_FILE),
                "--device",
                "a",
                "--min-agreement",
                "2",
            ),
            2,
            "--min-agreement",
        ),
        (("fleet", "profile", str(MODEL_FILE)), 2, "exactly one of --device"),
        (("fleet", "profile", str(MODEL_FILE), "--device", "a", "--runs", "0"), 2, "--runs"),
        (
            ("fleet", "validate", "results", "job-x", "--server", "http://127.0.0.1:9"),
            1,
            "cannot reach the fleet",
        ),
        (
            ("fleet", "profile", "results", "job-x", "--server", "http://127.0.0.1:9"),
            1,
            "cannot reach the fleet",
        ),
    ],
)
def test_bad_input_one_line(cli, args, code, text):
    r = cli(*args, env={"LITESHIP_TOKEN": "t" * 32, "LITESHIP_SERVER": "http://127.0.0.1:9"})
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert text in last and "Traceback" not in r.stderr, r.stderr


def test_data_that_is_not_a_dataset_is_a_clear_error(cli, tmp_path):
    bad = tmp_path / "val.npz"
    bad.write_bytes(b"not a zip")
    r = cli("fleet", "validate", str(MODEL_FILE), "--data", str(bad), "--device", "a",
            env={"LITESHIP_TOKEN": "t" * 32, "LITESHIP_SERVER": "http://127.0.0.1:9"})  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr and "val.npz" in r.stderr, r.stderr
