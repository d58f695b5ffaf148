"""Service entry points and the loop's life cycle: clean stops, waiting without a model, check-ins right
after a change, and failed commands that leave nothing behind."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from agent_test_helpers import FakeFleet

from liteship.agent.client import DeviceClient
from liteship.agent.clock import Clock
from liteship.agent.health import HealthWindow
from liteship.agent.loop import AgentLoop
from liteship.agent.recovery import recover
from liteship.agent.service import AgentConfig, enroll, install_package, run_agent
from liteship.agent.sinks import FileSink
from liteship.agent.sources import ImageFolderSource
from liteship.agent.store import Store
from liteship.agent.telemetry import Spool
from liteship.agent.updater import Updater
from liteship.errors import AgentError, LiteshipError, ServerError

# ---- clean stops and the health window ---------------------------------------------------------------


def test_clean_stops_do_not_count_and_the_window_accumulates(tmp_path, keys, packages):
    store = Store(tmp_path / "s", keys.public_path)
    store.install(packages["1.0.0"])
    store.commit()
    store.install(packages["1.1.0"])
    store.record_clean_shutdown()  # as `agent install` does
    for session in range(4):  # four short sessions of 3 inferences, each ended cleanly
        assert "after a clean stop" in recover(store)[0]
        h = HealthWindow(store, inferences=10)
        verdicts = [h.observe(ok=True, latency_ms=1.0) for _ in range(3)]
        store.record_clean_shutdown(h.progress())
        if session < 3:
            assert store.state()["pending"]["inferences"] == 3 * (session + 1)
    assert verdicts[0] == "committed"  # 10th inference overall, in the 4th session
    assert store.current_version() == "1.1.0" and store.state()["failed"] == {}


def test_inferences_of_the_old_model_do_not_decide_the_window(tmp_path, keys, packages):
    """Between the swap on disk and the loop's reload, frames still run on the old model."""
    store = Store(tmp_path / "s", keys.public_path)
    store.install(packages["1.0.0"])
    store.commit()
    store.install(packages["1.1.0"])
    h = HealthWindow(store, inferences=2)
    assert [h.observe(ok=True, latency_ms=1.0, version="1.0.0") for _ in range(5)] == [None] * 5
    assert h.observe(ok=False, version="1.0.0") is None and store.state()["pending"]["version"] == "1.1.0"
    assert [h.observe(ok=True, latency_ms=1.0, version="1.1.0") for _ in range(2)] == [None, "committed"]


def test_a_crash_after_a_clean_stop_still_counts(tmp_path, keys, packages):
    store = Store(tmp_path / "s", keys.public_path)
    store.install(packages["1.0.0"])  # no previous model: a revert leaves none
    store.record_clean_shutdown()
    assert "after a clean stop" in recover(store)[0]  # the record is consumed by this start-up
    assert "unclean stop (1 of 2 allowed)" in recover(store)[0]  # no record: the process died
    assert "unclean stop (2 of 2 allowed)" in recover(store)[0]
    actions = recover(store)
    assert actions[0].startswith("reverted 1.0.0 (no fallback): the agent stopped uncleanly 3 times")
    assert not any("None" in a for a in actions)
    assert store.current_version() is None and store.is_failed("1.0.0")


# ---- the loop without a model, and check-ins right after a change ------------------------------------


def _loop(tmp_path, keys, fleet, digit_pngs, **kw):
    store = Store(tmp_path / "s", keys.public_path)
    (store.root / "tuf").mkdir(exist_ok=True)
    (store.root / "tuf" / "root.json").write_bytes(fleet.root)
    client = DeviceClient("http://fleet.test", "d1", "tok", transport=fleet.transport())
    updater = Updater(store, client, Clock(store.root / "clock.json"), model_id="digits", interval=3600)
    return AgentLoop(
        store,
        ImageFolderSource(digit_pngs, loop=True),
        FileSink(tmp_path / "out.jsonl"),
        Spool(tmp_path / "spool"),
        updater=updater,
        num_threads=1,
        **kw,
    )


def test_without_a_model_the_loop_waits_logs_and_honours_the_frame_limit(tmp_path, keys, digit_pngs, caplog):
    fleet = FakeFleet()  # assigns nothing
    loop = _loop(tmp_path, keys, fleet, digit_pngs, max_frames=3, model_wait_s=0.05)
    with caplog.at_level(logging.INFO, logger="liteship.agent"):
        assert loop.run() == 0
    assert (loop.dropped, loop.stop_reason) == (3, "frame limit (3)")
    waiting = [r for r in caplog.records if r.getMessage() == "waiting for a model"]
    assert len(waiting) == 1 and "no model chosen" in waiting[0].fields["last_decision"]


def test_without_a_model_the_loop_stops_on_sigterm(tmp_path, keys, digit_pngs):
    loop = _loop(tmp_path, keys, FakeFleet(), digit_pngs, model_wait_s=0.05)  # no frame limit
    threading.Timer(0.5, loop.stop, args=(15,)).start()
    assert loop.run() == 0 and loop.stop_reason == "signal SIGTERM" and loop.dropped >= 1


def test_the_server_hears_of_an_install_at_once(tmp_path, keys, packages, digit_pngs):
    fleet = FakeFleet()
    fleet.assignment = fleet.add("digits/1.0.0/digits-1.0.0.lsp", packages["1.0.0"].read_bytes())
    loop = _loop(tmp_path, keys, fleet, digit_pngs, max_frames=3)  # polls every hour
    assert loop.run() == 3
    checkins = [r.content for r in fleet.requests if r.url.path.endswith("/checkin")]
    assert len(checkins) == 2 and b'"model_version":"1.0.0"' in checkins[-1].replace(b" ", b"")
    assert loop.store.state()["last_decision"]["action"] == "installed"  # a report is not a decision


# ---- failed commands leave nothing behind; messages name parameters ----------------------------------


def test_failed_enroll_creates_nothing(tmp_path, keys):
    fresh = tmp_path / "fresh"
    with pytest.raises(ServerError, match="unreachable"):
        enroll(fresh, server="http://127.0.0.1:9", enrollment_token="t", device_id="d", key=keys.public_path)
    assert not fresh.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    fleet = FakeFleet()  # has no registration endpoint: the server refuses, as with a wrong token
    with pytest.raises(ServerError, match="HTTP 404"):
        enroll(
            existing,
            server="http://fleet.test",
            enrollment_token="wrong",
            device_id="d",
            key=keys.public_path,
            transport=fleet.transport(),
        )
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]


def test_install_and_run_validate_before_creating_anything(tmp_path, keys, packages, digit_pngs):
    state = tmp_path / "a" / "state"
    with pytest.raises(AgentError) as e:
        install_package(state, packages["1.0.0"])
    assert "`key`" in str(e.value) and "--" not in str(e.value)
    with pytest.raises(AgentError, match="no publisher key"):
        run_agent(AgentConfig(state_dir=state, source=f"images:{digit_pngs}", max_frames=1))
    with pytest.raises(AgentError, match="nothing to run") as e:
        run_agent(AgentConfig(state_dir=state, key=Path(keys.public_path), source=f"images:{digit_pngs}"))
    assert "`install_package`" in str(e.value) and "`enroll`" in str(e.value)
    with pytest.raises(AgentError, match="smoke test"):
        install_package(state, packages["nan"], key=keys.public_path)
    assert not (tmp_path / "a").exists()
    with pytest.raises(LiteshipError) as e:
        Store(tmp_path / "b").install(packages["1.0.0"])
    assert "`public_key`" in str(e.value) and "--" not in str(e.value)


def test_cli_shows_flags_and_creates_nothing(cli, keys, packages, digit_pngs, tmp_path):
    state = tmp_path / "state"
    r = cli("agent", "status", "--state-dir", str(state))
    assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "does not exist" in r.stderr
    assert "liteship agent enroll" in r.stderr and "liteship agent install" in r.stderr
    r = cli("agent", "install", "--state-dir", str(state), str(packages["1.0.0"]))
    assert r.returncode == 1 and "Pass `--key`" in r.stderr and "`key`" not in r.stderr
    r = cli(
        "agent",
        "run",
        "--state-dir",
        str(state),
        "--key",
        keys.public_path,
        "--source",
        f"images:{digit_pngs}",
    )
    assert r.returncode == 1 and "nothing to run" in r.stderr and "liteship agent install" in r.stderr
    assert "liteship agent enroll" in r.stderr
    assert not state.exists()
    r = cli("agent", "install", "--state-dir", str(state), "--key", keys.public_path, str(packages["1.0.0"]))
    assert r.returncode == 0 and "(no fallback)" in r.stdout
    r = cli("agent", "status", "--state-dir", str(state))
    assert "health window since" in r.stdout and "ago)" in r.stdout and "None" not in r.stdout
