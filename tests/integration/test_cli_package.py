"""`liteship keygen | package | verify` through the real console script."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np


def test_keygen_package_verify(cli, tflite_float, digits, tmp_path):
    r = cli("keygen", "-o", str(tmp_path / "keys" / "liteship"))
    assert r.returncode == 0, r.stderr
    key, pub = tmp_path / "keys" / "liteship.key", tmp_path / "keys" / "liteship.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and pub.is_file()
    r = cli("keygen", "-o", str(tmp_path / "keys" / "liteship"))
    assert r.returncode == 1 and "already exists" in r.stderr
    assert "--force" in r.stderr and "overwrite=" not in r.stderr

    np.save(tmp_path / "golden.npy", digits[2][:3])
    (tmp_path / "report.json").write_text(json.dumps({"accuracy": 0.97}))
    r = cli(
        "package", str(tflite_float), "--id", "digits", "--version", "1.2.0", "--key", str(key),
        "--golden", str(tmp_path / "golden.npy"), "--metrics", str(tmp_path / "report.json"),
        "-o", str(tmp_path / "out"), "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    pkg = tmp_path / "out" / "digits-1.2.0.lsp"
    assert info["path"] == str(pkg) and pkg.is_file()
    assert info["manifest"]["metrics"] == {"accuracy": 0.97} and info["manifest"]["golden"]["count"] == 3

    r = cli("verify", str(pkg), "--key", str(pub))
    assert r.returncode == 0, r.stderr
    assert "verified: digits 1.2.0" in r.stdout
    r = cli("verify", str(pkg), "--key", str(pub), "--json")
    assert json.loads(r.stdout)["manifest"]["version"] == "1.2.0"

    cli("keygen", "-o", str(tmp_path / "other"))
    r = cli("verify", str(pkg), "--key", str(tmp_path / "other.pub"))
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "was signed by key" in r.stderr

    data = bytearray(pkg.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.lsp"
    bad.write_bytes(bytes(data))
    r = cli("verify", str(bad), "--key", str(pub))
    assert r.returncode == 1 and "was modified" in r.stderr


def test_package_usage_errors(cli, tflite_float, tmp_path):
    r = cli("package", str(tflite_float), "--id", "digits", "--version", "1.0.0")
    assert r.returncode == 2 and "--key" in r.stderr
    r = cli("keygen", "-o", str(tmp_path / "k"))
    r = cli(
        "package", str(tflite_float), "--id", "digits", "--version", "one", "--key", str(tmp_path / "k.key")
    )
    assert r.returncode == 1 and "not a semantic version" in r.stderr
    assert not any(Path(tmp_path).glob("*.lsp"))


def test_package_refuses_to_overwrite_without_force_and_keeps_modes(cli, tflite_float, digits, tmp_path):
    cli("keygen", "-o", str(tmp_path / "k"))
    np.save(tmp_path / "golden.npy", digits[2][:2])
    args = (
        "package", str(tflite_float), "--id", "digits", "--version", "1.0.0", "--key", str(tmp_path / "k.key"),
        "--golden", str(tmp_path / "golden.npy"), "-o", str(tmp_path / "d.lsp"),
    )  # fmt: skip
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    pkg = tmp_path / "d.lsp"
    assert stat.S_IMODE(pkg.stat().st_mode) == 0o666 & ~_umask()  # as open() would; not mkstemp's 0600
    before = pkg.read_bytes()
    r = cli(*args, "--description", "second")
    assert r.returncode == 1 and "already exists" in r.stderr and "--force" in r.stderr
    assert "overwrite=" not in r.stderr and pkg.read_bytes() == before
    pkg.chmod(0o640)
    r = cli(*args, "--description", "second", "--force")
    assert r.returncode == 0, r.stderr
    assert pkg.read_bytes() != before and stat.S_IMODE(pkg.stat().st_mode) == 0o640


def test_package_refuses_nan_golden_and_verify_names_truncation(cli, tflite_float, digits, tmp_path):
    cli("keygen", "-o", str(tmp_path / "k"))
    x = digits[2][:2].copy()
    x[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    r = cli(
        "package", str(tflite_float), "--id", "digits", "--version", "1.0.0", "--key", str(tmp_path / "k.key"),
        "--golden", str(tmp_path / "nan.npy"), "-o", str(tmp_path / "d.lsp"),
    )  # fmt: skip
    assert r.returncode == 1 and "contains NaN or Inf" in r.stderr and not (tmp_path / "d.lsp").exists()
    r = cli(
        "package", str(tflite_float), "--id", "digits", "--version", "1.0.0", "--key", str(tmp_path / "k.key"),
        "-o", str(tmp_path / "d.lsp"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = (tmp_path / "d.lsp").read_bytes()
    (tmp_path / "trunc.lsp").write_bytes(data[: len(data) // 4])
    r = cli("verify", str(tmp_path / "trunc.lsp"), "--key", str(tmp_path / "k.pub"))
    assert r.returncode == 1 and "truncated or corrupt" in r.stderr and "unsigned" not in r.stderr


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask
