"""Model slots: install, swap, commit, revert, and start-up recovery from every kind of leftover."""

from __future__ import annotations

import os

import pytest
from agent_test_helpers import slot_ok

from liteship.agent.fsutil import atomic_write_json
from liteship.agent.recovery import recover
from liteship.agent.store import Store
from liteship.errors import UpdateRefused


@pytest.fixture
def store(tmp_path, keys):
    return Store(tmp_path / "state", keys.public_path)


def test_install_swaps_and_keeps_fallback(store, packages):
    store.install(packages["1.0.0"])
    store.install(packages["1.1.0"])
    assert (store.current_version(), store.previous_version()) == ("1.1.0", "1.0.0")
    assert os.readlink(store.root / "current") == "versions/1.1.0"
    assert store.state()["pending"]["version"] == "1.1.0"
    store.commit()
    assert store.state()["pending"] is None and store.state()["last_decision"]["action"] == "committed"
    store.install(packages["1.2.0"])
    store.commit()
    assert sorted(p.name for p in store.versions.iterdir()) == ["1.1.0", "1.2.0"]  # 1.0.0 collected
    assert slot_ok(store) == "1.2.0"


def test_refusals_leave_current_untouched(store, packages, tmp_path):
    store.install(packages["1.1.0"])
    with pytest.raises(UpdateRefused) as e:
        store.install(packages["1.0.0"])
    assert e.value.reason == "rollback"
    with pytest.raises(UpdateRefused) as e:
        store.install(packages["nan"])
    assert e.value.reason == "smoke-test" and "NaN" in str(e.value)
    assert store.is_failed("1.3.0") and not (store.versions / "1.3.0").exists()
    tampered = tmp_path / "t.lsp"
    data = bytearray(packages["1.2.0"].read_bytes())
    data[len(data) // 2] ^= 1
    tampered.write_bytes(bytes(data))
    with pytest.raises(UpdateRefused) as e:
        store.install(tampered)
    assert e.value.reason == "signature"
    assert store.current_version() == "1.1.0" and slot_ok(store) == "1.1.0"
    assert list(store.incoming.iterdir()) == []


def test_revert_marks_failed_and_reports(store, packages):
    store.install(packages["1.0.0"])
    store.install(packages["1.1.0"])
    assert store.revert("NaN in health window", from_version="1.0.0").done is False  # not current: no-op
    assert store.current_version() == "1.1.0" and not store.is_failed("1.0.0")
    outcome = store.revert("NaN in health window", from_version="1.1.0")
    assert (outcome.done, outcome.to, outcome.by) == (True, "1.0.0", "device")
    assert store.current_version() == "1.0.0" and store.previous_version() is None
    report = store.take_reports()[0]
    assert (report["version"], report["to"], report["by"]) == ("1.1.0", "1.0.0", "device")
    store.reports_sent(1)
    assert store.take_reports() == []
    with pytest.raises(UpdateRefused, match="not retried"):
        store.check_offer("1.1.0")


def test_recover_counts_restarts_in_health_window(store, packages):
    store.install(packages["1.0.0"])
    store.commit()
    store.install(packages["1.1.0"])
    assert "continues" in recover(store)[0] and "continues" in recover(store)[0]
    assert "reverted 1.1.0 to 1.0.0" in recover(store)[0]
    assert store.current_version() == "1.0.0" and store.is_failed("1.1.0")


def test_recover_finishes_a_swap_whose_intent_was_recorded(store, packages):
    store.install(packages["1.0.0"])
    store.commit()
    store.install(packages["1.1.0"])
    # as if the agent died after writing the intent, before switching either symlink
    store._point("current", "1.0.0")
    store._point("previous", None)
    actions = recover(store)
    assert actions[0] == "finished the interrupted swap to 1.1.0"
    assert (store.current_version(), store.previous_version()) == ("1.1.0", "1.0.0")


def test_recover_removes_staging_and_repairs_links(store, packages):
    store.install(packages["1.0.0"])
    store.install(packages["1.1.0"])
    store.commit()
    (store.incoming / "stage-123").mkdir()
    (store.incoming / "stage-123" / "model.tflite").write_bytes(b"half")
    (store.versions / ".1.2.0.tmp-x").mkdir()
    os.symlink("versions/9.9.9", store.root / ".current.tmp-77")
    (store.incoming / "abc.part").write_bytes(b"resume me")
    recover(store)
    assert sorted(p.name for p in store.incoming.iterdir()) == ["abc.part"]
    assert (
        not (store.versions / ".1.2.0.tmp-x").exists() and not (store.root / ".current.tmp-77").is_symlink()
    )
    # a dangling current falls back to previous
    import shutil

    shutil.rmtree(store.versions / "1.1.0")
    assert "current slot 1.1.0 is damaged (missing)" in recover(store)
    assert store.current_version() == "1.0.0" and slot_ok(store) == "1.0.0"


def test_recover_reverifies_files_and_signature(store, packages, tmp_path):
    store.install(packages["1.0.0"])
    store.install(packages["1.1.0"])
    store.commit()
    model = store.versions / "1.1.0" / "model.tflite"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0xFF
    model.write_bytes(bytes(data))
    actions = recover(store)
    assert any("model.tflite differs" in a for a in actions)
    assert store.current_version() == "1.0.0" and not store.is_failed("1.1.0")  # damage, not a bad model
    # a manifest changed on disk no longer matches its signature
    m = store.versions / "1.0.0" / "manifest.json"
    m.write_bytes(m.read_bytes().replace(b'"1.0.0"', b'"1.0.1"', 1))
    recover(store)
    assert store.current_version() is None and slot_ok(store) is None


def test_state_file_is_replaced_atomically(store):
    atomic_write_json(store.state_file, {"failed": {"0.1.0": {"reason": "x"}}})
    store.record_decision("idle")
    assert store.is_failed("0.1.0") and not list(store.root.glob(".state.json.tmp*"))
