"""The capture policy is obeyed only when TUF verifies it (issue 25): an in-memory fleet with real TUF
metadata (python-tuf) and the agent's real Updater and client; no sockets."""

from __future__ import annotations

import json
import time

import pytest
from agent_test_helpers import FakeFleet

from liteship.agent.capture import Capture
from liteship.agent.client import DeviceClient
from liteship.agent.clock import Clock
from liteship.agent.store import Store
from liteship.agent.updater import Updater

PATH = "capture/digits/policy.json"


def document(model_id: str = "digits") -> bytes:
    return json.dumps(
        {
            "model_id": model_id,
            "rules": [{"trigger": "random", "rate": 1.0}],
            "per_hour": 10,
            "per_day": 100,
            "disk_bytes": 1 << 20,
            "retention_s": 3600,
            "expires": time.time() + 3600,
            "issued_at": time.time(),
        }
    ).encode()


@pytest.fixture
def fleet():
    return FakeFleet()


@pytest.fixture
def updater(tmp_path, keys, fleet):
    store = Store(tmp_path / "state", keys.public_path)
    (store.root / "tuf").mkdir()
    (store.root / "tuf" / "root.json").write_bytes(fleet.root)
    client = DeviceClient("http://fleet.test", "d1", "tok", transport=fleet.transport())
    return Updater(store, client, Clock(store.root / "clock.json"), model_id="digits", interval=1.0)


def signed_offer(fleet: FakeFleet, data: bytes, path: str = PATH) -> dict:
    a = fleet.add(path, data)
    return {"target_path": a["target_path"], "sha256": a["sha256"], "size": a["size"]}


def test_a_signed_policy_turns_capture_on_and_no_offer_turns_it_off(tmp_path, fleet, updater):
    cap = Capture(tmp_path / "capture")
    offer = signed_offer(fleet, document())
    assert cap.apply_offer(offer, tuf=updater.tuf, model_id="digits") == "on"
    assert cap.policy is not None and cap.policy.sha256 == offer["sha256"] and cap.policy.per_hour == 10
    n = len(fleet.requests)
    assert cap.apply_offer(offer, tuf=updater.tuf, model_id="digits") == "unchanged"
    assert len(fleet.requests) == n  # a known policy costs no request
    assert Capture(tmp_path / "capture").policy == cap.policy  # kept across a restart
    assert cap.apply_offer(None, tuf=updater.tuf, model_id="digits") == "off"
    assert cap.policy is None and not (tmp_path / "capture" / "policy.json").exists()


def test_an_unsigned_policy_is_refused(tmp_path, fleet, updater):
    from tuf.api.metadata import TargetFile

    cap = Capture(tmp_path / "capture")
    data = document()
    fleet.blobs[PATH] = data  # served, but not in the signed targets (no publish)
    sha = TargetFile.from_data(PATH, data, ["sha256"]).hashes["sha256"]
    offer = {"target_path": PATH, "sha256": sha, "size": len(data)}
    assert cap.apply_offer(offer, tuf=updater.tuf, model_id="digits") == "refused"
    assert cap.policy is None


def test_an_offer_that_differs_from_its_signed_target_is_refused(tmp_path, fleet, updater):
    cap = Capture(tmp_path / "capture")
    offer = signed_offer(fleet, document())
    forged = {**offer, "sha256": "0" * 64}
    assert cap.apply_offer(forged, tuf=updater.tuf, model_id="digits") == "refused"
    assert (
        cap.apply_offer({**offer, "size": offer["size"] + 1}, tuf=updater.tuf, model_id="digits") == "refused"
    )
    assert cap.policy is None


def test_tampered_bytes_are_refused(tmp_path, fleet, updater):
    cap = Capture(tmp_path / "capture")
    offer = signed_offer(fleet, document())
    fleet.tamper = True  # the server (or a man in the middle) changes the document in flight
    assert cap.apply_offer(offer, tuf=updater.tuf, model_id="digits") == "refused"
    assert cap.policy is None and not list((tmp_path / "capture").glob(".policy-*"))


def test_a_signed_policy_for_another_model_or_malformed_offers_are_refused(tmp_path, fleet, updater):
    cap = Capture(tmp_path / "capture")
    other = signed_offer(fleet, document("faces"), "capture/faces/policy.json")
    assert cap.apply_offer(other, tuf=updater.tuf, model_id="digits") == "refused"
    for bad in (
        {"target_path": "digits/1.0.0/model.lsp", "sha256": "a" * 64, "size": 10},  # not a capture target
        {"target_path": PATH, "sha256": "a" * 64, "size": 10**9},  # over the size a policy may have
        {"target_path": PATH},
        "on",
    ):
        assert cap.apply_offer(bad, tuf=updater.tuf, model_id="digits") in ("refused", "unchanged")
    assert cap.policy is None


def test_a_refused_offer_keeps_the_policy_in_force(tmp_path, fleet, updater):
    cap = Capture(tmp_path / "capture")
    good = signed_offer(fleet, document())
    assert cap.apply_offer(good, tuf=updater.tuf, model_id="digits") == "on"
    assert cap.apply_offer({**good, "sha256": "1" * 64}, tuf=updater.tuf, model_id="digits") == "refused"
    assert cap.policy is not None and cap.policy.sha256 == good["sha256"]
