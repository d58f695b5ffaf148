"""Publishing: signed packages only, versions only upward, content-addressed, TUF target signed."""

from __future__ import annotations

import zipfile


def test_publish_then_list(fleet, make_package):
    r = fleet.publish(make_package("digits", "1.0.0"))
    assert r.status_code == 201, r.text
    rel = r.json()
    assert rel["model_id"] == "digits" and rel["version"] == "1.0.0"
    assert rel["channels"] == ["stable"]  # the first release of a model becomes stable
    assert rel["tuf"] == "signed"
    assert rel["target_path"] == "digits/1.0.0/digits-1.0.0.lsp"
    models = fleet.client.get("/api/v1/models", headers=fleet.admin).json()
    assert [m["id"] for m in models] == ["digits"] and models[0]["channels"] == {"stable": "1.0.0"}
    art = fleet.client.get(f"/api/v1/artifacts/{rel['sha256']}")
    assert art.status_code == 200 and art.content == make_package("digits", "1.0.0").read_bytes()
    assert fleet.app.state.tuf.has_target(rel["target_path"], rel["sha256"])


def test_newer_version_does_not_move_stable_and_channel_option(fleet, make_package):
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    r = fleet.publish(make_package("digits", "1.1.0"), channel="beta")
    assert r.status_code == 201 and r.json()["channels"] == ["beta"]
    models = fleet.client.get("/api/v1/models", headers=fleet.admin).json()
    assert models[0]["channels"] == {"stable": "1.0.0", "beta": "1.1.0"}


def test_version_not_greater_is_refused(fleet, make_package):
    assert fleet.publish(make_package("digits", "1.1.0")).status_code == 201
    for version in ("1.1.0", "1.0.9", "1.1.0-rc.1"):
        r = fleet.publish(make_package("digits", version))
        assert r.status_code == 409, (version, r.text)
        assert "not newer than the latest published version 1.1.0" in r.json()["detail"]
    models = fleet.client.get("/api/v1/models", headers=fleet.admin).json()
    assert [x["version"] for x in models[0]["releases"]] == ["1.1.0"]


def test_untrusted_signer_is_refused(fleet, make_package):
    r = fleet.publish(make_package("digits", "1.0.0", key="other"))
    assert r.status_code == 422
    assert "signed by key" in r.json()["detail"]
    assert fleet.client.get("/api/v1/models", headers=fleet.admin).json() == []


def test_tampered_and_unsigned_packages_are_refused(fleet, make_package, tmp_path):
    good = make_package("digits", "1.0.0").read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 3] ^= 0x01  # a byte inside the model data
    (tmp_path / "flip.lsp").write_bytes(bytes(flipped))
    unsigned = tmp_path / "unsigned.lsp"
    with zipfile.ZipFile(make_package("digits", "1.0.0")) as src, zipfile.ZipFile(unsigned, "w") as dst:
        for info in src.infolist():
            if info.filename != "signature.json":
                dst.writestr(info, src.read(info.filename))
    (tmp_path / "junk.lsp").write_bytes(b"not a zip at all")
    for name in ("flip.lsp", "unsigned.lsp", "junk.lsp"):
        r = fleet.publish(tmp_path / name, filename=name)
        assert r.status_code == 422, (name, r.text)
        # the message names the uploaded file, never the server's temporary copy
        assert f"package '{name}' refused" in r.json()["detail"], r.text
        assert "/tmp" not in r.json()["detail"] and ".lsp'" in r.json()["detail"]
    assert fleet.client.get("/api/v1/models", headers=fleet.admin).json() == []
    # nothing stored half-way: no artifact, no TUF target
    assert not any((fleet.app.state.settings.data_dir / "artifacts").rglob("*[0-9a-f]"))
    assert fleet.app.state.tuf.current_targets().targets == {}


def test_no_trusted_key_configured(make_settings, make_package):
    from fastapi.testclient import TestClient

    from liteship.fleet.app import create_app

    app = create_app(make_settings(trusted_keys=[]))
    with TestClient(app) as c:
        r = c.post(
            "/api/v1/releases",
            content=make_package().read_bytes(),
            headers={"Authorization": "Bearer " + app.state.settings.admin_token},
        )
    # the library names the setting; `liteship fleet` translates it (tests/integration/fleet/test_cli.py)
    assert r.status_code == 422 and "`trusted_keys`" in r.json()["detail"]
    assert "--" not in r.json()["detail"]


def test_offline_targets_key_flow(sqlite_fleet, make_package, tmp_path):
    """Without targets.pem on the server, publishing waits for the CLI to sign the targets offline."""
    from liteship.fleet.client import AdminClient

    tuf_dir = sqlite_fleet.app.state.tuf.keys_dir
    offline = tmp_path / "targets.pem"
    (tuf_dir / "targets.pem").rename(offline)
    client = AdminClient("http://testserver", token=sqlite_fleet.admin["Authorization"].split()[1])
    client._http = sqlite_fleet.client
    client._http.headers.update(sqlite_fleet.admin)
    rel = client.publish(make_package("digits", "1.0.0"))
    assert rel["tuf"] == "pending-offline-signature"
    assert not sqlite_fleet.app.state.tuf.has_target(rel["target_path"], rel["sha256"])
    # a rollout cannot be started, and a target signed by a wrong key is refused
    bad = sqlite_fleet.client.put(
        "/api/v1/tuf/targets",
        content=sqlite_fleet.client.get("/api/v1/tuf/targets-draft", headers=sqlite_fleet.admin).content,
        headers=sqlite_fleet.admin,
    )
    assert bad.status_code == 400 and "not signed by the root's targets key" in bad.json()["detail"]
    version = client.sign_targets(offline)
    assert version == 2
    assert sqlite_fleet.app.state.tuf.has_target(rel["target_path"], rel["sha256"])
