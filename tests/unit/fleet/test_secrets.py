"""Tokens: generated once into the data folder (0600), configured ones win, weak ones refused off loopback."""

from __future__ import annotations

import json
import stat
import warnings

import pytest

from liteship.errors import UsageError
from liteship.fleet.secrets import check_exposure, ensure_secrets, is_loopback
from liteship.fleet.settings import DEFAULT_SECRET, Settings


def test_generated_once_then_reused(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first, sources = ensure_secrets(Settings(data_dir=tmp_path / "d"))
    assert sources == {"admin_token": "generated", "enrollment_token": "generated"}
    path = tmp_path / "d" / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "admin_token": first.admin_token,
        "enrollment_token": first.enrollment_token,
    }
    assert len(first.admin_token) >= 32 and first.admin_token != first.enrollment_token
    again, sources = ensure_secrets(Settings(data_dir=tmp_path / "d"))
    assert sources == {"admin_token": "stored", "enrollment_token": "stored"}
    assert (again.admin_token, again.enrollment_token) == (first.admin_token, first.enrollment_token)


def test_configured_token_wins_and_is_not_stored(tmp_path):
    s, sources = ensure_secrets(Settings(data_dir=tmp_path, admin_token="a" * 20))
    assert sources == {"admin_token": "configured", "enrollment_token": "generated"}
    assert s.admin_token == "a" * 20
    assert "a" * 20 not in (tmp_path / "secrets.json").read_text()
    both, _ = ensure_secrets(
        Settings(data_dir=tmp_path / "x", admin_token="a" * 20, enrollment_token="b" * 20)
    )
    assert not (tmp_path / "x" / "secrets.json").exists() and both.enrollment_token == "b" * 20


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="`data_dir` .* is a file"):
        ensure_secrets(Settings(data_dir=tmp_path / "f"))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("fleet.example", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_weak_tokens_refused_off_loopback_only(tmp_path):
    weak = Settings(data_dir=tmp_path, admin_token=DEFAULT_SECRET, enrollment_token="short")
    check_exposure(weak, host="127.0.0.1")  # development on this machine: accepted
    with pytest.raises(UsageError) as e:
        check_exposure(weak, host="0.0.0.0")
    text = str(e.value)
    assert "admin_token is the well-known default 'changethis'" in text
    assert "enrollment_token is shorter than 16 characters" in text and "`host`" in text
    check_exposure(Settings(data_dir=tmp_path), host="0.0.0.0")  # unset: generated, strong
    check_exposure(Settings(data_dir=tmp_path, admin_token="x" * 16), host="0.0.0.0")
