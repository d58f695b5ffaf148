"""Field capture on the server (issue 25.2/25.3): signed policies in the check-in, sample uploads
(idempotent, bounded, within quota, only the device's own model), labels, and the export."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest

from liteship.agent.capture import encode_sample
from liteship.errors import StoreUnavailable

RULES = {"rules": [{"trigger": "low-confidence", "threshold": 0.6}], "per_hour": 3, "per_day": 5}


def sample(sample_id: str, policy_sha: str, *, model_id="digits", version="1.0.0", value=1.0, klass=2):
    meta = {
        "sample_id": sample_id,
        "model_id": model_id,
        "version": version,
        "trigger": "low-confidence",
        "class": klass,
        "label": str(klass),
        "confidence": 0.4,
        "out_of_range": False,
        "captured_at": time.time(),
        "policy": policy_sha,
        "preprocessing": {"mean": [1.0], "std": [16.0]},
    }
    x = np.full((8, 8, 1), value, np.float32)
    return encode_sample(x, np.linspace(0, 1, 10), meta, None)


def put(fleet, device_id, headers, sample_id, data):
    return fleet.client.put(f"/api/v1/devices/{device_id}/samples/{sample_id}", content=data, headers=headers)


@pytest.fixture
def capturing(fleet, make_package):
    assert fleet.publish(make_package("digits", "1.0.0"), channel="stable").status_code == 201
    assert fleet.publish(make_package("other", "1.0.0"), channel="stable").status_code == 201
    r = fleet.client.put("/api/v1/models/digits/capture", json=RULES, headers=fleet.admin)
    assert r.status_code == 200, r.text
    return fleet, r.json()


def test_capture_on_is_a_signed_tuf_target_offered_at_check_in_and_off_removes_it(capturing):
    fleet, policy = capturing
    assert policy["tuf"] == "signed" and policy["target_path"] == "capture/digits/policy.json"
    h = fleet.register("pi-1")
    offer = fleet.checkin("pi-1", h).json()["capture"]
    assert offer == {
        "target_path": "capture/digits/policy.json",
        "sha256": policy["sha256"],
        "size": offer["size"],
    }
    targets = fleet.app.state.tuf.current_targets().targets  # what the served N.targets.json signs
    assert targets["capture/digits/policy.json"].hashes["sha256"] == policy["sha256"]
    doc = fleet.client.get(f"/tuf/targets/capture/digits/{policy['sha256']}.policy.json")
    assert doc.status_code == 200 and json.loads(doc.content)["per_hour"] == 3
    other = fleet.register("pi-other", model_id="other")  # another model: no offer
    assert (
        fleet.client.post("/api/v1/devices/pi-other/checkin", json={"model_id": "other"}, headers=other)
        .json()
        .get("capture")
        is None
    )
    assert fleet.client.delete("/api/v1/models/digits/capture", headers=fleet.admin).json()["ended"] == 1
    fleet.app.state.capture_offers.invalidate()
    assert fleet.checkin("pi-1", h).json().get("capture") is None
    assert "capture/digits/policy.json" not in fleet.app.state.tuf.current_targets().targets


def test_a_cohort_policy_is_offered_to_its_devices_only(fleet, make_package):
    assert fleet.publish(make_package("digits", "1.0.0"), channel="stable").status_code == 201
    body = {**RULES, "devices": ["pi-a"]}
    assert (
        fleet.client.put("/api/v1/models/digits/capture", json=body, headers=fleet.admin).status_code == 200
    )
    a, b = fleet.register("pi-a"), fleet.register("pi-b")
    assert fleet.checkin("pi-a", a).json()["capture"] is not None
    assert fleet.checkin("pi-b", b).json().get("capture") is None


def test_samples_upload_once_within_quota_and_export_for_the_pipeline(capturing, tmp_path):
    fleet, policy = capturing
    h = fleet.register("pi-1")
    sha = policy["sha256"]
    first = put(fleet, "pi-1", h, "s1", sample("s1", sha, value=1.0))
    assert first.status_code == 201, first.text
    again = put(fleet, "pi-1", h, "s1", sample("s1", sha, value=1.0))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert put(fleet, "pi-1", h, "s2", sample("s2", sha, value=2.0)).status_code == 201
    assert put(fleet, "pi-1", h, "s3", sample("s3", sha, value=3.0)).status_code == 201
    over = put(fleet, "pi-1", h, "s4", sample("s4", sha, value=4.0))  # per_hour = 3
    assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 3600
    assert "quota is 3 per hour" in over.json()["detail"]
    rows = fleet.client.get("/api/v1/samples", params={"model_id": "digits"}, headers=fleet.admin).json()
    assert [r["sample_id"] for r in rows] == ["s3", "s2", "s1"]
    assert (
        rows[0]["trigger"] == "low-confidence"
        and rows[0]["confidence"] == 0.4
        and rows[0]["shape"] == [8, 8, 1]
    )
    # unlabeled: x only (the raw domain: x * std + mean), labels as -1
    r = fleet.client.get("/api/v1/models/digits/samples/export", headers=fleet.admin)
    z = np.load(io.BytesIO(r.content))
    assert "y" not in z.files and z["x"].shape == (3, 8, 8, 1)
    assert (
        np.allclose(z["x"][:, 0, 0, 0], [1 * 16 + 1, 2 * 16 + 1, 3 * 16 + 1]) and list(z["label"]) == [-1] * 3
    )
    ids = {r["sample_id"]: r["id"] for r in rows}
    for sid, label in (("s1", 4), ("s2", 5)):
        ok = fleet.client.post(
            f"/api/v1/samples/{ids[sid]}/label", json={"label": label}, headers=fleet.admin
        )
        assert ok.status_code == 200 and ok.json()["label"] == label
    fleet.client.post(f"/api/v1/samples/{ids['s3']}/label", json={"discarded": True}, headers=fleet.admin)
    r = fleet.client.get("/api/v1/models/digits/samples/export", headers=fleet.admin)
    z = np.load(io.BytesIO(r.content))
    assert list(z["y"]) == [4, 5] and z["x"].shape == (2, 8, 8, 1)  # the discarded one is not exported
    path = tmp_path / "field.npz"
    path.write_bytes(r.content)
    from liteship.data import load_dataset
    from liteship.types import Preprocessing

    ds = load_dataset(path, preprocessing=Preprocessing(mean=1.0, std=16.0), input_shape=(1, 8, 8, 1))
    xs = [x for x, _ in ds]
    assert np.allclose(xs[0], 1.0) and np.allclose(xs[1], 2.0)  # the pipeline gets the device's inputs back


def test_a_hostile_device_cannot_send_for_another_model_unasked_or_past_the_limits(capturing):
    fleet, policy = capturing
    sha = policy["sha256"]
    h = fleet.register("pi-1")
    refused = put(fleet, "pi-1", h, "o1", sample("o1", sha, model_id="other"))
    assert refused.status_code == 409 and "cannot send samples of 'other'" in refused.json()["detail"]
    unasked = put(fleet, "pi-1", h, "u1", sample("u1", "0" * 64))
    assert unasked.status_code == 409 and "not asked for" in unasked.json()["detail"]
    devices = fleet.client.get("/api/v1/devices", headers=fleet.admin).json()
    assert next(d for d in devices if d["id"] == "pi-1")["refused_reports"] == 2
    assert put(fleet, "pi-1", h, "v1", sample("v1", sha, version="9.9.9")).status_code == 422
    assert put(fleet, "pi-1", h, "g1", b"not a sample").status_code == 422
    pickled = io.BytesIO()
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object), scores=np.ones(3), meta=np.zeros(3, np.uint8))
    assert put(fleet, "pi-1", h, "p1", pickled.getvalue()).status_code == 422
    assert put(fleet, "pi-1", h, "m1", sample("other-id", sha)).status_code == 422  # id in meta ≠ URL
    big = put(fleet, "pi-1", h, "b1", b"\0" * ((8 << 20) + 1))
    assert big.status_code == 413
    fleet.register("pi-2")
    assert put(fleet, "pi-2", h, "x1", sample("x1", sha)).status_code == 403  # for another device
    assert put(fleet, "pi-1", fleet.admin, "a1", sample("a1", sha)).status_code in (401, 403)
    # the client resolves the dots (/api/v1/devices/etc: no PUT there); encoded, they reach the route
    assert put(fleet, "pi-1", h, "../../etc", sample("e1", sha)).status_code in (404, 405, 422)
    assert put(fleet, "pi-1", h, "..%2F..%2Fetc", sample("e1", sha)).status_code in (404, 422)
    rows = fleet.client.get("/api/v1/samples", headers=fleet.admin).json()
    assert rows == []
    # the daily quota (5) holds across hours: received times are the server's
    for i in range(3):
        assert put(fleet, "pi-1", h, f"d{i}", sample(f"d{i}", sha)).status_code == 201
    from liteship.fleet.samples import FieldSample

    with fleet.app.state.sessionmaker() as s:  # an hour later
        for row in s.query(FieldSample).all():
            row.received_at -= 3700
        s.commit()
    assert put(fleet, "pi-1", h, "d3", sample("d3", sha)).status_code == 201
    assert put(fleet, "pi-1", h, "d4", sample("d4", sha)).status_code == 201
    day = put(fleet, "pi-1", h, "d5", sample("d5", sha))
    assert day.status_code == 429 and "quota is 5 per day" in day.json()["detail"]


def test_capture_and_samples_need_the_admin_token(capturing):
    fleet, _ = capturing
    h = fleet.register("pi-1")
    for method, url in (
        ("PUT", "/api/v1/models/digits/capture"),
        ("GET", "/api/v1/samples"),
        ("GET", "/api/v1/models/digits/samples/export"),
        ("POST", "/api/v1/samples/1/label"),
    ):
        assert fleet.client.request(method, url, json=RULES, headers=h).status_code == 403
        assert fleet.client.request(method, url, json=RULES).status_code == 401


def test_a_bad_policy_is_a_clear_422(fleet, make_package):
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    for body, why in (
        ({"rules": [{"trigger": "low-confidence"}]}, "threshold"),
        ({"rules": [{"trigger": "random"}], "per_hour": 10**6}, "per_hour"),
        ({"rules": []}, "rules"),
    ):
        r = fleet.client.put("/api/v1/models/digits/capture", json=body, headers=fleet.admin)
        assert r.status_code == 422 and why in r.text
    r = fleet.client.put("/api/v1/models/nosuch/capture", json=RULES, headers=fleet.admin)
    assert r.status_code == 404 and "no release" in r.json()["detail"]


def test_purge_deletes_rows_and_files(capturing):
    fleet, policy = capturing
    h = fleet.register("pi-1")
    for i in range(2):
        assert (
            put(fleet, "pi-1", h, f"p{i}", sample(f"p{i}", policy["sha256"], value=float(i))).status_code
            == 201
        )
    rows = fleet.client.get("/api/v1/samples", headers=fleet.admin).json()
    store = fleet.app.state.store
    from liteship.fleet.samples import FieldSample

    with fleet.app.state.sessionmaker() as s:
        shas = [r.sha256 for r in s.query(FieldSample).all()]
    assert len(rows) == 2 and all(store.size(sha) for sha in shas)
    r = fleet.client.delete("/api/v1/models/digits/samples", params={"before": 0}, headers=fleet.admin)
    assert r.json()["deleted"] == 0
    r = fleet.client.delete(
        "/api/v1/models/digits/samples", params={"before": time.time() + 1}, headers=fleet.admin
    )
    assert r.status_code == 200 and r.json()["deleted"] == 2
    assert fleet.client.get("/api/v1/samples", headers=fleet.admin).json() == []
    assert all(store.size(sha) is None for sha in shas)
    assert (
        fleet.client.delete("/api/v1/models/digits/samples", params={"before": 1}, headers=h).status_code
        == 403
    )


class _DeadStore:
    """The artifact store with S3 down for deletes (reads and writes still work)."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def delete(self, sha256):
        raise StoreUnavailable("the object store refused the delete (test)")


def test_retention_deletes_old_unlabeled_samples_and_keeps_labeled_ones(capturing):
    """Server-side retention (fleet/retention.py): unlabeled samples past `sample_retention_days` go,
    rows then files; labeled ones stay; a store that cannot delete leaves files, never rows without one."""
    from liteship.fleet import retention
    from liteship.fleet.samples import FieldSample

    fleet, policy = capturing
    devices = {"pi-1": fleet.register("pi-1"), "pi-2": fleet.register("pi-2")}  # the quota is 3 an hour
    for i in range(4):
        device = "pi-1" if i < 3 else "pi-2"
        data = sample(f"r{i}", policy["sha256"], value=float(i))
        assert put(fleet, device, devices[device], f"r{i}", data).status_code == 201
    store = fleet.app.state.store
    with fleet.app.state.sessionmaker() as s:
        rows = {r.sample_id: (r.id, r.sha256) for r in s.query(FieldSample).all()}
    r = fleet.client.post(f"/api/v1/samples/{rows['r1'][0]}/label", json={"label": 3}, headers=fleet.admin)
    assert r.status_code == 200, r.text
    now = time.time()
    with fleet.app.state.sessionmaker() as s:  # r0, r1, r3 arrived 40 days ago; r2 today
        for sid in ("r0", "r1", "r3"):
            s.get(FieldSample, rows[sid][0]).received_at = now - 40 * 86400
        s.commit()
    with fleet.app.state.sessionmaker() as s:
        assert (
            retention.prune(s, retention_days=0, store=store, sample_retention_days=0, now=now).samples == 0
        )
        pruned = retention.prune(
            s, retention_days=0, store=_DeadStore(store), sample_retention_days=30, now=now
        )
    assert pruned.samples == 2  # r0 and r3 (r1 is labeled, r2 is recent)
    left = {x["sample_id"] for x in fleet.client.get("/api/v1/samples", headers=fleet.admin).json()}
    assert left == {"r1", "r2"}
    assert store.size(rows["r0"][1]) is not None  # the dead store kept the file: unreferenced, not lost
    for sid in ("r1", "r2"):
        r = fleet.client.get(f"/api/v1/samples/{rows[sid][0]}/file", headers=fleet.admin)
        assert r.status_code == 200 and r.content
    with fleet.app.state.sessionmaker() as s:  # the store back: the next old unlabeled one goes with its file
        s.get(FieldSample, rows["r2"][0]).received_at = now - 40 * 86400
        s.commit()
        assert (
            retention.prune(s, retention_days=0, store=store, sample_retention_days=30, now=now).samples == 1
        )
    assert store.size(rows["r2"][1]) is None
