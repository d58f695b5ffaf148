"""Distribution: HTTP Range on artifacts, path tricks, and TUF over real HTTP with tuf.ngclient —
including attacks (older timestamp, expired snapshot, a target whose bytes differ) that it must refuse."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from tuf.api.exceptions import ExpiredMetadataError, LengthOrHashMismatchError, RepositoryError
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp
from tuf.ngclient import Updater

from liteship.fleet.tuf_repo import load_signer


@pytest.fixture
def published(sqlite_fleet, make_package):
    r = sqlite_fleet.publish(make_package("digits", "1.0.0"))
    assert r.status_code == 201
    return sqlite_fleet, r.json(), make_package("digits", "1.0.0").read_bytes()


def test_range_requests(published):
    fleet, rel, data = published
    url, size = f"/api/v1/artifacts/{rel['sha256']}", len(data)
    r = fleet.client.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == data[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{size}" and r.headers["etag"] == f'"{rel["sha256"]}"'
    # resume an interrupted download from where it stopped
    half = size // 2
    r = fleet.client.get(url, headers={"Range": f"bytes={half}-"})
    assert r.status_code == 206 and data[:half] + r.content == data
    assert fleet.client.get(url, headers={"Range": "bytes=-10"}).content == data[-10:]
    assert fleet.client.get(url, headers={"Range": f"bytes=10-{size + 100}"}).content == data[10:]
    r = fleet.client.get(url, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    r = fleet.client.get(url, headers={"If-None-Match": f'"{rel["sha256"]}"'})
    assert r.status_code == 304 and r.content == b""
    r = fleet.client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert r.status_code == 200 and r.content == data  # the validator changed: whole artifact
    assert fleet.client.get(url, headers={"Range": "bytes=0-1,5-6"}).status_code == 200
    head = fleet.client.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == size
    # the same bytes under the TUF target path, with and without the consistent-snapshot hash prefix
    t = fleet.client.get(
        f"/tuf/targets/digits/1.0.0/{rel['sha256']}.digits-1.0.0.lsp", headers={"Range": "bytes=0-3"}
    )
    assert t.status_code == 206 and t.content == data[:4]
    assert fleet.client.get("/tuf/targets/digits/1.0.0/digits-1.0.0.lsp").content == data


@pytest.mark.parametrize(
    "path",
    [
        "/tuf/targets/../../keys/online.pem",
        "/tuf/targets/digits/1.0.0/..%2F..%2F..%2Fkeys%2Fonline.pem",
        "/tuf/targets/digits/..%2F..%2Ftuf/keys/online.pem",
        "/tuf/targets/%2Fetc%2Fpasswd",
        "/tuf/metadata/..%2Fkeys%2Fonline.pem",
        "/tuf/metadata/keys/online.pem",
        "/api/v1/artifacts/..%2F..%2Ftuf%2Fkeys%2Fonline.pem",
        "/api/v1/artifacts/" + "0" * 64,
        "/tuf/targets/digits/1.0.0/" + "0" * 64 + ".digits-1.0.0.lsp",
    ],
)
def test_path_tricks_are_refused(published, path):
    fleet, _, _ = published
    r = fleet.client.get(path)
    assert 400 <= r.status_code < 500
    assert b"PRIVATE KEY" not in r.content and b"root:" not in r.content


def _updater(server, tmp_path, name="client") -> Updater:
    root = httpx.get(server.url + "/tuf/metadata/1.root.json").content
    meta, targets = tmp_path / name / "meta", tmp_path / name / "targets"
    meta.mkdir(parents=True, exist_ok=True)  # an existing dir keeps what the client trusted before
    targets.mkdir(parents=True, exist_ok=True)
    return Updater(
        str(meta), server.url + "/tuf/metadata/", str(targets), server.url + "/tuf/targets/", bootstrap=root
    )


def _publish_live(server, make_package, version="1.0.0") -> dict:
    from .conftest import ADMIN

    r = httpx.post(
        server.url + "/api/v1/releases",
        content=make_package("digits", version).read_bytes(),
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_tuf_client_downloads_a_verified_target(live_server, make_package, tmp_path):
    rel = _publish_live(live_server, make_package)
    up = _updater(live_server, tmp_path)
    up.refresh()
    info = up.get_targetinfo(rel["target_path"])
    assert info is not None and info.hashes["sha256"] == rel["sha256"]
    path = up.download_target(info)
    with open(path, "rb") as f:
        assert f.read() == make_package("digits", "1.0.0").read_bytes()


def _sign(md_dir, online, signed) -> bytes:
    md = Metadata(signed)
    md.sign(online)
    return md.to_bytes()


def test_tuf_attacks_are_refused(live_server, make_package, tmp_path):
    app = live_server.app
    tuf = app.state.tuf
    md_dir, online = tuf.metadata_dir, load_signer(tuf.keys_dir / "online.pem")
    old_timestamp = (md_dir / "timestamp.json").read_bytes()
    rel = _publish_live(live_server, make_package)
    up = _updater(live_server, tmp_path)
    up.refresh()  # the client now trusts the newer timestamp
    current = (md_dir / "timestamp.json").read_bytes()

    # 1. rollback: the server (or a mirror) offers an older timestamp
    (md_dir / "timestamp.json").write_bytes(old_timestamp)
    with pytest.raises(RepositoryError, match="version"):
        _updater(live_server, tmp_path).refresh()  # the same client, next poll
    (md_dir / "timestamp.json").write_bytes(current)

    # 2. freeze: a snapshot that has expired (correctly signed, newer version, timestamp pointing to it)
    ts = Metadata.from_bytes(current).signed
    snap_old = Metadata.from_file(str(md_dir / f"{ts.snapshot_meta.version}.snapshot.json")).signed
    past = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    snap = Snapshot(version=snap_old.version + 1, expires=past, meta=dict(snap_old.meta))
    (md_dir / f"{snap.version}.snapshot.json").write_bytes(_sign(md_dir, online, snap))
    new_ts = Timestamp(
        version=ts.version + 1, expires=ts.expires, snapshot_meta=MetaFile(version=snap.version)
    )
    (md_dir / "timestamp.json").write_bytes(_sign(md_dir, online, new_ts))
    with pytest.raises(ExpiredMetadataError):
        _updater(live_server, tmp_path, "c2").refresh()
    (md_dir / f"{snap.version}.snapshot.json").unlink()
    (md_dir / "timestamp.json").write_bytes(current)

    # 3. arbitrary package: the artifact's bytes differ from the hash the targets metadata signs
    blob = app.state.settings.data_dir / "artifacts" / rel["sha256"][:2] / rel["sha256"]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    up3 = _updater(live_server, tmp_path, "c3")
    up3.refresh()
    with pytest.raises(LengthOrHashMismatchError):
        up3.download_target(up3.get_targetinfo(rel["target_path"]))
    assert not list((tmp_path / "c3" / "targets").iterdir())  # nothing unverified left behind


def test_timestamp_is_resigned_before_it_expires(sqlite_fleet):
    tuf = sqlite_fleet.app.state.tuf
    before = Metadata.from_bytes(sqlite_fleet.client.get("/tuf/metadata/timestamp.json").content).signed
    tuf.expiry = type(tuf.expiry)(timestamp=timedelta(days=10))  # half-life now longer than what is left
    after = Metadata.from_bytes(sqlite_fleet.client.get("/tuf/metadata/timestamp.json").content).signed
    assert after.version == before.version + 1 and after.expires > before.expires
    root = Metadata.from_bytes(sqlite_fleet.client.get("/tuf/metadata/root.json").content).signed
    lifetimes = {role: (root.expires - datetime.now(timezone.utc)).days for role in ["root"]}
    assert lifetimes["root"] >= 364
