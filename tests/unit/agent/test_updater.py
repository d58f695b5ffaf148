"""Update logic against an in-memory fleet (httpx.MockTransport) with real TUF metadata: no sockets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from agent_test_helpers import FakeFleet, slot_ok

from liteship.agent.client import DeviceClient
from liteship.agent.clock import Clock
from liteship.agent.store import Store
from liteship.agent.updater import Updater


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


def offer(fleet, packages, version, name=None):
    fleet.assignment = fleet.add(
        f"digits/{version}/digits-{version}.lsp", packages[name or version].read_bytes()
    )
    return fleet.assignment


def target_requests(fleet):
    return [r for r in fleet.requests if r.url.path.startswith("/tuf/targets/")]


def test_installs_the_assignment_through_tuf(updater, fleet, packages):
    offer(fleet, packages, "1.0.0")
    assert updater.poll_once()["action"] == "installed"
    assert slot_ok(updater.store) == "1.0.0"
    assert updater.poll_once()["action"] == "up-to-date"
    checkin = [r for r in fleet.requests if r.url.path.endswith("/checkin")][-1]
    assert b'"model_version":"1.0.0"' in checkin.content.replace(b" ", b"")
    assert updater.store.state()["last_checkin"]["ok"] is True
    assert list(updater.store.incoming.iterdir()) == []


def test_interrupted_download_resumes_with_range(updater, fleet, packages):
    a = offer(fleet, packages, "1.0.0")
    fleet.cut_after = 3000
    assert updater.poll_once()["action"] == "download-failed"
    part = updater.store.incoming / f"{a['sha256']}.part"
    assert part.stat().st_size == 3000 and updater.store.current_version() is None
    fleet.cut_after = None
    assert updater.poll_once()["action"] == "installed"
    assert target_requests(fleet)[-1].headers["range"] == "bytes=3000-"


def test_incoming_holds_only_the_download_of_the_current_assignment(updater, fleet, packages):
    a = offer(fleet, packages, "1.0.0")
    fleet.cut_after = 3000
    assert updater.poll_once()["action"] == "download-failed"
    stale = updater.store.incoming / f"{a['sha256']}.part"
    assert stale.stat().st_size == 3000
    b = offer(fleet, packages, "1.1.0")  # the server moved on before the download finished
    fleet.cut_after = None
    assert updater.poll_once()["action"] == "installed" and updater.store.current_version() == "1.1.0"
    assert list(updater.store.incoming.iterdir()) == []
    # a crash after the install, before the package was deleted, leaves a complete copy behind
    (updater.store.incoming / f"{b['sha256']}.lsp").write_bytes(packages["1.1.0"].read_bytes())
    assert updater.poll_once()["action"] == "up-to-date"
    assert list(updater.store.incoming.iterdir()) == []


def test_tampered_artifact_is_refused(updater, fleet, packages):
    offer(fleet, packages, "1.0.0")
    updater.poll_once()
    offer(fleet, packages, "1.1.0")
    fleet.tamper = True
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "hash")
    assert slot_ok(updater.store) == "1.0.0" and list(updater.store.incoming.iterdir()) == []
    fleet.tamper = False  # the server repaired: the version was not blacklisted
    assert updater.poll_once()["action"] == "installed"


def test_expired_metadata_is_refused(updater, fleet, packages):
    offer(fleet, packages, "1.0.0")
    updater.poll_once()
    fleet.expires = timedelta(seconds=-60)
    offer(fleet, packages, "1.1.0")
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "expired-metadata")
    assert slot_ok(updater.store) == "1.0.0" and updater.store.previous_version() is None


def test_rollback_is_refused_before_download(updater, fleet, packages):
    offer(fleet, packages, "1.0.0")
    updater.poll_once()
    updater.store.commit()
    offer(fleet, packages, "1.1.0")
    updater.poll_once()
    updater.store.commit()
    offer(fleet, packages, "1.2.0")
    updater.poll_once()  # now current 1.2.0, previous 1.1.0; 1.0.0 is gone
    n = len(target_requests(fleet))
    fleet.assignment = {
        **fleet.assignment,
        "version": "1.0.0",
        "target_path": "digits/1.0.0/digits-1.0.0.lsp",
        "sha256": None,
    }
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "rollback") and len(target_requests(fleet)) == n
    assert updater.store.current_version() == "1.2.0"
    fleet.assignment = {**fleet.assignment, "version": "1.1.0"}  # the fallback slot: the server sends us back
    assert updater.poll_once()["action"] == "reverted-by-server"
    assert updater.store.current_version() == "1.1.0" and not updater.store.is_failed("1.2.0")
    # issue 11: the device keeps a fallback slot (the version it was sent back from), and says so
    assert slot_ok(updater.store) == "1.1.0" and updater.store.previous_version() == "1.2.0"
    event = updater.store.take_reports()[-1]
    assert (event["version"], event["to"], event["by"]) == ("1.2.0", "1.1.0", "server")
    assert updater.store.state()["history"][-1]["by"] == "server"
    # the server assigns 1.2.0 again: the kept slot comes back, as a candidate, with no download
    n = len(target_requests(fleet))
    fleet.assignment = {**fleet.assignment, "version": "1.2.0"}
    assert updater.poll_once()["action"] == "installed" and len(target_requests(fleet)) == n
    assert (updater.store.current_version(), updater.store.previous_version()) == ("1.2.0", "1.1.0")
    assert updater.store.state()["pending"]["version"] == "1.2.0"


def test_smoke_test_failure_is_never_current_nor_retried(updater, fleet, packages):
    offer(fleet, packages, "1.0.0")
    updater.poll_once()
    offer(fleet, packages, "1.3.0", "nan")
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "smoke-test")
    n = len(target_requests(fleet))
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "failed-before") and len(target_requests(fleet)) == n
    assert slot_ok(updater.store) == "1.0.0"


def test_server_unreachable_and_reports_sent_later(updater, fleet, packages):
    offer(fleet, packages, "1.0.0")
    updater.poll_once()
    offer(fleet, packages, "1.1.0")
    updater.poll_once()
    updater.store.revert("NaN in the health window", from_version="1.1.0")
    fleet.offline = True
    assert updater.poll_once()["action"] == "offline"
    reverts = [
        r for r in updater.store.take_reports() if r["event"] == "reverted"
    ]  # beside downloaded events
    assert updater.store.state()["last_checkin"]["ok"] is False and len(reverts) == 1
    fleet.offline = False
    d = updater.poll_once()
    assert d["action"] == "refused" and d["code"] == "failed-before"
    body = [r for r in fleet.requests if r.url.path.endswith("/checkin")][-1].content
    assert b"reverted" in body and updater.store.take_reports() == []


def test_impossible_clock_uses_server_date_or_defers(updater, fleet, packages):
    updater.clock = Clock(updater.store.root / "clock.json", now=lambda: 86_400.0)  # 1970
    offer(fleet, packages, "1.0.0")
    assert updater.poll_once()["action"] == "installed"  # the server's Date stands in for the clock
    fleet.send_date = False
    updater.client.server_time = None
    offer(fleet, packages, "1.1.0")
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "clock-unknown")
    assert slot_ok(updater.store) == "1.0.0"


def test_poll_interval_has_jitter(updater):
    delays = {round(updater.next_delay(), 6) for _ in range(20)}
    assert len(delays) > 1 and all(0.8 <= d <= 1.2 for d in delays)


def rollback_to_control(fleet, packages, version, name=None, **fields):
    """The server's answer to a device still running the candidate of a halted/aborted rollout."""
    a = offer(fleet, packages, version, name)
    fleet.assignment = {
        **a,
        "reason": f"rollout 7 was aborted: back to the control {version}",
        "reason_code": "rollback-to-control",
        "allow_downgrade_to": version,
        "rollout_id": 7,
        "arm": "control",
        **fields,
    }
    return fleet.assignment


def test_rollback_to_control_downgrades_a_device_that_only_had_the_candidate(updater, fleet, packages):
    offer(fleet, packages, "1.1.0")  # the candidate is this device's first install: no fallback slot
    assert updater.poll_once()["action"] == "installed"
    updater.store.commit()
    assert updater.store.previous_version() is None
    n = len(target_requests(fleet))
    rollback_to_control(fleet, packages, "1.0.0")
    d = updater.poll_once()
    assert (d["action"], d["version"], d["code"]) == ("downgraded", "1.0.0", "rollback-to-control")
    assert d["reason"].startswith("downgraded to 1.0.0 on the server's rollback-to-control, from 1.1.0")
    assert len(target_requests(fleet)) == n + 1  # fetched through TUF like any update
    store = updater.store
    # issue 22 (7): the halted/aborted candidate is never the fallback
    assert slot_ok(store) == "1.0.0" and store.previous_version() is None
    assert store.state()["pending"]["version"] == "1.0.0"  # health window as for any install
    assert store.state()["pending"]["previous"] is None
    s = store.state()
    assert s["last_decision"]["action"] == "downgraded" and s["last_downgrade"]["to"] == "1.0.0"
    assert (s["last_downgrade"]["from"], s["last_downgrade"]["rollout_id"]) == ("1.1.0", 7)
    assert updater.poll_once()["action"] == "up-to-date"
    assert store.state()["last_downgrade"]["reason"] == d["reason"]  # kept after later decisions
    store.commit()
    assert not (store.versions / "1.1.0").exists()  # the halted candidate's slot is garbage

    from liteship.agent.service import agent_status

    assert agent_status(store.root).last_downgrade["reason"] == d["reason"]


@pytest.mark.parametrize(
    "fields",
    [
        {"allow_downgrade_to": "1.1.0"},  # permission for another version than the one assigned
        {"reason_code": "stable"},  # permission without the reason
        {"allow_downgrade_to": None},  # the reason without the permission
        {"reason_code": "rollout-control", "arm": "control"},
    ],
    ids=["other-version", "other-reason", "no-permission", "rollout-control"],
)
def test_other_older_versions_stay_refused(updater, fleet, packages, fields):
    offer(fleet, packages, "1.2.0")
    updater.poll_once()
    n = len(target_requests(fleet))
    rollback_to_control(fleet, packages, "1.0.0", **fields)
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "rollback"), d
    assert len(target_requests(fleet)) == n and slot_ok(updater.store) == "1.2.0"
    assert "last_downgrade" not in updater.store.state()


def test_rollback_to_control_never_installs_a_failed_version(updater, fleet, packages):
    offer(fleet, packages, "1.0.0")
    updater.poll_once()
    offer(fleet, packages, "1.1.0")
    updater.poll_once()
    updater.store.revert(
        "NaN in the health window", from_version="1.1.0"
    )  # 1.1.0 failed here; current 1.0.0, no fallback
    offer(fleet, packages, "1.2.0")
    updater.poll_once()
    updater.store.commit()
    assert updater.store.previous_version() == "1.0.0"
    updater.store.mark_failed("1.0.0", "median latency above the budget")  # as if it failed later
    updater.store._point("previous", None)
    rollback_to_control(fleet, packages, "1.0.0")
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "failed-before")
    assert slot_ok(updater.store) == "1.2.0"


def test_rollback_to_control_still_verifies_hash_signature_and_smoke_test(
    updater, fleet, packages, keys, tflite_float, golden, tmp_path
):
    from agent_test_helpers import INPUT, build, scale_weights

    from liteship.package import generate_keypair
    from liteship.runtime import LiteRTRunner

    offer(fleet, packages, "1.2.0")
    updater.poll_once()
    rollback_to_control(fleet, packages, "1.0.0")
    fleet.tamper = True
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "hash")
    fleet.tamper = False
    good = tflite_float.read_bytes()
    with LiteRTRunner(good, num_threads=1) as r:
        expected = {s.name: r.infer({INPUT: golden})[s.name] for s in r.output_specs}
    other = generate_keypair(tmp_path / "other.key")
    older = {
        "0.9.0": build(good, tmp_path / "o", "0.9.0", other.private_path, golden),
        "0.8.0": build(
            scale_weights(good, float("nan")),
            tmp_path / "n",
            "0.8.0",
            keys.private_path,
            golden,
            golden_outputs=expected,
        ),
    }
    rollback_to_control(fleet, older, "0.9.0")  # signed by a key this device does not trust
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "signature")
    rollback_to_control(fleet, older, "0.8.0")  # genuine, but NaN: fails its smoke test
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "smoke-test") and updater.store.is_failed("0.8.0")
    assert slot_ok(updater.store) == "1.2.0" and "last_downgrade" not in updater.store.state()


def test_status_shows_the_version_it_was_sent_back_from(updater, fleet, packages, cli):
    """Issue 11: `agent status` shows that the device ran 1.2.0 and was sent back, and why. Issue 22
    (7): the rollout of 1.2.0 was halted, so 1.2.0 is not kept as the fallback."""
    import json

    offer(fleet, packages, "1.1.0")
    updater.poll_once()
    updater.store.commit()
    offer(fleet, packages, "1.2.0")
    updater.poll_once()
    updater.store.commit()
    assert updater.store.previous_version() == "1.1.0"
    rollback_to_control(fleet, packages, "1.1.0", reason="rollout 3 halted")  # what the server sends
    assert updater.poll_once()["action"] == "reverted-by-server"
    r = cli("agent", "status", "--state-dir", str(updater.store.root))
    assert r.returncode == 0, r.stderr
    assert "previous  -" in r.stdout and "1.2.0" not in r.stdout.split("previous")[1].splitlines()[0]
    line = next(x for x in r.stdout.splitlines() if x.startswith("history"))
    assert "ran 1.2.0, sent back to 1.1.0 by the server" in line and "rollout 3 halted" in line
    st = json.loads(cli("agent", "status", "--state-dir", str(updater.store.root), "--json").stdout)
    assert st["history"][-1]["by"] == "server" and st["previous"] is None
    assert slot_ok(updater.store) == "1.1.0" and not (updater.store.versions / "1.2.0").exists()
