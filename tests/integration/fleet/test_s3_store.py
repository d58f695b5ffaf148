"""Artifacts on a real S3 server (SeaweedFS on loopback, started once for this module): the store's
operations, publish and download through the API (redirect and proxy), credentials checked at start,
and a store that is down or a bucket that disappears."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ADMIN, ENROLL, LiveServer
from .services import Nginx, SeaweedS3, agent_updater, free_port, mirror_copy


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3, monkeypatch) -> str:
    """A fresh bucket, and the AWS_* / LITESHIP_S3_ENDPOINT_URL environment pointing at it.

    (SeaweedFS gives each bucket its own volumes: a fresh one per test keeps the tests apart.)
    """
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return name


def s3_app(make_settings, s3, bucket: str, **overrides):
    from liteship.fleet.app import create_app

    settings = make_settings(
        artifacts=f"s3://{bucket}/fleet", s3_endpoint_url=s3.endpoint, s3_timeout_s=1.0, **overrides
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app(settings)


def objects(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_store_operations_on_a_real_s3_server(s3, bucket, tmp_path):
    from liteship.fleet.s3 import S3ArtifactStore

    store = S3ArtifactStore(f"s3://{bucket}/p", endpoint_url=s3.endpoint)
    store.check()
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(200_000))
    sha, size = store.put_file(blob)
    assert (sha, size) == (store.put_file(blob))  # same content twice: one object
    assert objects(s3, bucket) == [f"p/{sha[:2]}/{sha}"]
    assert store.size(sha) == 200_000 and store.size("0" * 64) is None
    assert b"".join(store.open_range(sha, 1000, 1999)) == blob.read_bytes()[1000:2000]
    url = store.download_url(sha, "m.lsp")
    r = httpx.get(url, headers={"Range": "bytes=150000-"})  # presigned GET: Range is honoured
    assert r.status_code == 206 and r.content == blob.read_bytes()[150000:]
    store.delete(sha)
    assert store.size(sha) is None


def test_publish_writes_to_s3_and_downloads_redirect_with_range(s3, bucket, make_settings, make_package):
    app = s3_app(make_settings, s3, bucket)
    package = make_package("digits", "1.0.0")
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as c:
        r = c.post(
            "/api/v1/releases", content=package.read_bytes(), headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert r.status_code == 201, r.text
        sha, target = r.json()["sha256"], r.json()["target_path"]
        assert objects(s3, bucket) == [f"fleet/{sha[:2]}/{sha}"]
        assert not (Path(app.state.settings.data_dir) / "artifacts").exists()  # nothing on local disk
        folder, _, name = target.rpartition("/")
        r = c.get(f"/tuf/targets/{folder}/{sha}.{name}")
        assert r.status_code == 307 and r.headers["location"].startswith(s3.endpoint)
        assert r.headers["cache-control"] == "no-store"
        data = package.read_bytes()
        r = c.get(f"/tuf/targets/{target}", headers={"Range": "bytes=100-"}, follow_redirects=True)
        assert r.status_code == 206 and r.content == data[100:]
        assert r.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    app.state.engine.dispose()


def test_proxy_mode_streams_ranges_from_s3(s3, bucket, make_settings, make_package):
    from fastapi.testclient import TestClient

    app = s3_app(make_settings, s3, bucket, s3_downloads="proxy")
    package = make_package("digits", "1.0.0")
    data = package.read_bytes()
    with TestClient(app) as c:
        r = c.post("/api/v1/releases", content=data, headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 201, r.text
        sha = r.json()["sha256"]
        r = c.get(f"/api/v1/artifacts/{sha}", headers={"Range": "bytes=10-29"})
        assert r.status_code == 206 and r.content == data[10:30]
        r = c.get(f"/api/v1/artifacts/{sha}")
        assert r.status_code == 200 and r.content == data and r.headers["etag"] == f'"{sha}"'
        assert c.get(f"/api/v1/artifacts/{'0' * 64}").status_code == 404
    app.state.engine.dispose()


def test_wrong_credentials_are_one_line_at_serve_start(s3, bucket, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env(), AWS_SECRET_ACCESS_KEY="not-the-secret")
    liteship = str(Path(sys.executable).with_name("liteship"))
    done = subprocess.run(
        [
            liteship,
            "serve",
            "--data",
            str(tmp_path / "data"),
            "--port",
            str(free_port()),
            "--artifacts",
            f"s3://{bucket}/x",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done
    err = done.stderr.strip()
    assert "S3 refused the credentials" in err and "AWS_SECRET_ACCESS_KEY" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, "no S3 credentials"),
        ({"bucket": "no-such-bucket"}, "bucket 'no-such-bucket' does not exist"),
    ],
    ids=["no-credentials", "no-bucket"],
)
def test_missing_credentials_or_bucket_refused_at_start(
    s3, bucket, make_settings, monkeypatch, change, expected
):
    from liteship.errors import UsageError
    from liteship.fleet.app import create_app

    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup here
    target = change.pop("bucket", bucket)
    for key in change:
        monkeypatch.delenv(key)
    settings = make_settings(artifacts=f"s3://{target}/x", s3_endpoint_url=s3.endpoint)
    with pytest.raises(UsageError, match=expected):
        create_app(settings)
    assert not list(Path(settings.data_dir).glob("fleet.db"))  # refused before the database is made


def test_store_down_publish_fails_cleanly_then_works(s3, bucket, make_settings, make_package):
    from fastapi.testclient import TestClient

    app = s3_app(make_settings, s3, bucket)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    targets_before = app.state.tuf.read_file("timestamp.json")
    with TestClient(app) as c:
        s3.pause()
        try:
            r = c.post(
                "/api/v1/releases", content=make_package("digits", "1.0.0").read_bytes(), headers=admin
            )
        finally:
            s3.resume()
        assert r.status_code == 503, r.text
        assert "artifact store" in r.json()["detail"] and "retry" in r.json()["detail"]
        assert c.get("/api/v1/models", headers=admin).json() == []  # nothing half-registered
        assert app.state.tuf.read_file("timestamp.json") == targets_before  # TUF untouched
        r = c.post("/api/v1/releases", content=make_package("digits", "1.0.0").read_bytes(), headers=admin)
        assert r.status_code == 201, r.text
    app.state.engine.dispose()


# ---- the agent's side: downloads that fail cleanly, and mirrors when the bucket is gone -------------


def test_agent_download_fails_cleanly_while_store_is_down_and_bucket_loss_is_served_by_mirror(
    s3, bucket, make_settings, make_package, keys, tmp_path
):
    from liteship.errors import ServerError

    app = s3_app(make_settings, s3, bucket)
    data_dir = Path(app.state.settings.data_dir)
    package = make_package("digits", "1.0.0")
    with LiveServer(app) as server:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        r = httpx.post(f"{server.url}/api/v1/releases", content=package.read_bytes(), headers=admin)
        assert r.status_code == 201, r.text
        updater = agent_updater(
            server.url, data_dir, tmp_path / "dev-1", keys["good"].public_path, enroll=ENROLL
        )
        assignment = updater.client.check_in(model_id="digits", version=None)
        s3.pause()
        try:
            with pytest.raises(ServerError, match="no source delivered"):
                updater.fetch(assignment)  # redirected to a store that does not answer
        finally:
            s3.resume()
        assert updater.fetch(assignment).read_bytes() == package.read_bytes()  # the next poll retries

        # a mirror holds a copy of the targets (as a CDN pulling from /tuf/targets/ would)
        mirror_root = tmp_path / "mirror"
        mirror_copy(mirror_root, assignment, package)
        nginx = Nginx(mirror_root, tmp_path / "nginx").start()
        try:
            client = s3.client()
            for key in objects(s3, bucket):
                client.delete_object(Bucket=bucket, Key=key)
            client.delete_bucket(Bucket=bucket)  # the bucket disappears while the server runs
            r = httpx.post(
                f"{server.url}/api/v1/releases",
                content=make_package("digits", "1.1.0").read_bytes(),
                headers=admin,
            )
            assert r.status_code == 503, r.text  # publish fails cleanly
            models = httpx.get(f"{server.url}/api/v1/models", headers=admin).json()
            assert [rel["version"] for rel in models[0]["releases"]] == ["1.0.0"]
            mirrored = agent_updater(
                server.url, data_dir, tmp_path / "dev-2", keys["good"].public_path, [nginx.url], enroll=ENROLL
            )
            plan = mirrored.client.check_in(model_id="digits", version=None)
            assert mirrored.fetch(plan).read_bytes() == package.read_bytes()  # served by the mirror
            assert [line.split()[0] for line in nginx.access_log()] == ["200"]
        finally:
            nginx.stop()
    app.state.engine.dispose()
