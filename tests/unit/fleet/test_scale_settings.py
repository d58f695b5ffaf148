"""Settings of the scale-out path: database URLs, the artifact store URL, mirrors, what workers inherit."""

from __future__ import annotations

from pathlib import Path

import pytest

from liteship.errors import UsageError
from liteship.fleet.settings import Settings


def test_serve_refuses_an_unknown_database_url_in_one_line(cli, tmp_path):
    done = cli("serve", "--db", "notaurl://x", "--data", str(tmp_path / "d"), "--port", "8799")
    assert done.returncode == 2, done
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "internal error" not in err
    assert "--db 'notaurl://x' is not a supported database URL" in err
    assert "sqlite:///PATH" in err and "postgresql://" in err
    assert not (tmp_path / "d").exists()  # refused before anything is created


@pytest.mark.parametrize(
    "url",
    ["sqlite:///x.db", "postgresql://u@h/db", "postgres://u:p@h:5/db", "postgresql+psycopg://u@h/db"],
)
def test_supported_database_urls(url):
    assert Settings(database_url=url).database_url == url


@pytest.mark.parametrize(
    "url", ["notaurl://x", "x.db", "mysql://u@h/db", "postgresql+asyncpg://u:secret@h/db"]
)
def test_unsupported_database_urls_never_echo_a_password(url):
    with pytest.raises(UsageError, match="not a supported database URL") as e:
        Settings.from_env(database_url=url)
    assert "secret" not in str(e.value)


def test_artifacts_and_mirrors_are_checked():
    from liteship.fleet.s3 import parse_s3_url

    assert parse_s3_url("s3://models") == ("models", "")
    assert parse_s3_url("s3://models/fleet/prod/") == ("models", "fleet/prod/")
    for bad in ("s3://UPPER/x", "s3://a", "s3://ok-bucket/../x", "gs://x"):
        with pytest.raises(UsageError, match="not an S3 URL"):
            parse_s3_url(bad)
    with pytest.raises(UsageError, match="artifacts"):
        Settings.from_env(artifacts="gs://bucket")
    with pytest.raises(UsageError, match="not an http"):
        Settings.from_env(mirrors=["ftp://cdn.example/t"])
    assert Settings(mirrors=["https://cdn.example/t/"]).mirrors == ["https://cdn.example/t"]
    assert Settings().artifacts is None and Settings().mirrors == []  # no flags: local disk, no mirrors


def test_default_store_is_local_disk(tmp_path):
    from liteship.fleet.storage import LocalArtifactStore, open_store

    store = open_store(Settings(data_dir=tmp_path), tmp_path)
    assert isinstance(store, LocalArtifactStore) and store.root == tmp_path / "artifacts"
    assert store.download_url("a" * 64) is None


def test_workers_inherit_every_configured_setting(tmp_path, monkeypatch):
    from liteship.fleet.serve import prepare, worker_environment

    monkeypatch.delenv("LITESHIP_ADMIN_TOKEN", raising=False)
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql://u@h/db",
        artifacts="s3://models/fleet",
        s3_endpoint_url="http://127.0.0.1:8333",
        mirrors=["https://cdn.example/t"],
        enrollment_token="enroll-token-0123456789abcdef",
        trusted_keys=["/keys/a.pub", "/keys/b.pub"],
    )
    settings, info = prepare(settings, host="127.0.0.1", port=8700, workers=2)
    env = worker_environment(settings, info)
    assert env["LITESHIP_ARTIFACTS"] == "s3://models/fleet"
    assert env["LITESHIP_S3_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert env["LITESHIP_MIRRORS"] == "https://cdn.example/t"
    assert env["LITESHIP_TRUSTED_KEYS"] == "/keys/a.pub,/keys/b.pub"
    assert env["LITESHIP_ENROLLMENT_TOKEN"] == "enroll-token-0123456789abcdef"  # configured: passed
    assert "LITESHIP_ADMIN_TOKEN" not in env  # generated: the workers read secrets.json
    assert env["LITESHIP_DATA_DIR"] == str(Path(tmp_path).resolve())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again = Settings.from_env()
    assert (again.artifacts, again.mirrors, again.trusted_keys) == (
        settings.artifacts,
        settings.mirrors,
        settings.trusted_keys,
    )
