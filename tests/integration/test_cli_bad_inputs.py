"""The CLI on bad inputs (issue 10): each through the real console script, an error with exit 1 or 2, never an abort."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    from liteship.package import generate_keypair

    return generate_keypair(tmp_path_factory.mktemp("keys") / "k.key").private_path


def _package(cli, model, key, out, *extra):
    return cli("package", str(model), "--id", "digits", "--version", "1.0.0", "--key", str(key),
               "-o", str(out), *extra)  # fmt: skip


def test_empty_npy_is_an_error_not_an_abort(cli, tflite_float, signing_key, tmp_path):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    r = cli("run", str(tflite_float), "--input", str(empty))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "aborted" not in r.stderr and "empty.npy" in r.stderr and "Traceback" not in r.stderr
    r = _package(cli, tflite_float, signing_key, tmp_path / "out", "--golden", str(empty))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "aborted" not in r.stderr and "empty.npy" in r.stderr and "is empty (0 bytes)" in r.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_click_abort_from_eof_is_reported_as_a_truncated_file():
    """The class of the bug: any EOFError click turns into Abort is a truncated input, exit 1."""
    import click

    from liteship.cli._common import run_cli

    @click.command()
    def eof() -> None:
        raise EOFError("No data left in file")

    with pytest.raises(SystemExit) as e:
        run_cli(eof, [])
    assert e.value.code == 1


@pytest.mark.parametrize(
    "flag,value",
    [("--latency-budget-ms", "-5"), ("--latency-budget-ms", "nan"),
     ("--atol", "-1"), ("--rtol", "inf")],
)  # fmt: skip
def test_package_numeric_flags_are_bounded(cli, tflite_float, signing_key, tmp_path, flag, value):
    r = _package(cli, tflite_float, signing_key, tmp_path / "out", flag, value)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert flag in r.stderr and not (tmp_path / "out").exists()


def test_build_package_checks_the_budget_too(tflite_float, signing_key, tmp_path):
    from liteship.errors import PackageError
    from liteship.package import build_package

    for bad in (-5, 0, float("nan"), float("inf"), "fast"):
        with pytest.raises(PackageError, match="latency_budget_ms"):
            build_package(tflite_float, tmp_path, model_id="d", version="1.0.0", private_key=signing_key,
                          latency_budget_ms=bad)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_agent_status_on_a_folder_that_is_not_agent_state(cli, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"x")
    r = cli("agent", "status", "--state-dir", str(folder))
    assert r.returncode == 1 and "not an agent state folder" in r.stderr, (r.returncode, r.stderr)
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg"]  # nothing written
    r = cli("agent", "status", "--state-dir", str(tmp_path / "missing"))
    assert r.returncode == 1 and not (tmp_path / "missing").exists()
