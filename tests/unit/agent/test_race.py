"""Issue 10 (Medium): the updater and the inference loop racing must never leave the agent without a model.

The invariant (enforced in ``Store``): a verified model is always in ``current`` or ``previous``; a
revert names the version it leaves and is a no-op when that is no longer current; a version the loop
has leased is never deleted. ``CheckedStore`` asserts it after every slot operation, under the store's
lock, while the real loop (real LiteRT) and the real updater (real TUF, in-memory server) race.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from agent_test_helpers import FakeFleet

from liteship.agent import loop as loop_module
from liteship.agent.client import DeviceClient
from liteship.agent.clock import Clock
from liteship.agent.health import HealthWindow
from liteship.agent.loop import AgentLoop, LoadedModel
from liteship.agent.sinks import FileSink
from liteship.agent.sources import ImageFolderSource
from liteship.agent.store import Store
from liteship.agent.telemetry import Spool
from liteship.agent.updater import Updater


def invariant_problems(store: Store) -> list[str]:
    """What breaks the invariant now (empty when it holds)."""
    problems = []
    slots = [v for v in (store.current_version(), store.previous_version()) if v is not None]
    if not slots:
        problems.append("no model in current or previous")
    for v in slots:
        problem = store.slot_problem(store.versions / v)
        if problem is not None:
            problems.append(f"slot {v}: {problem}")
    for v in store.in_use():
        if not (store.versions / v / "manifest.json").is_file():
            problems.append(f"leased version {v} was deleted")
    return problems


class CheckedStore(Store):
    """A Store that checks the invariant at the end of every slot operation (still holding the lock)."""

    violations: list[str]

    def _after(self, name: str, out):
        self.violations += [f"after {name}: {p}" for p in invariant_problems(self)]
        return out

    def revert(self, *a, **kw):
        with self.locked():
            return self._after("revert", super().revert(*a, **kw))

    def swap(self, *a, **kw):
        with self.locked():
            return self._after("swap", super().swap(*a, **kw))

    def commit(self, *a, **kw):
        with self.locked():
            return self._after("commit", super().commit(*a, **kw))

    def release(self, *a, **kw):
        with self.locked():
            return self._after("release", super().release(*a, **kw))

    def lease_current(self):
        with self.locked():
            return self._after("lease", super().lease_current())

    def reinstate(self, *a, **kw):
        with self.locked():
            return self._after("reinstate", super().reinstate(*a, **kw))


@pytest.fixture
def fleet():
    return FakeFleet()


def _store(tmp_path, keys, fleet, packages) -> CheckedStore:
    store = CheckedStore(tmp_path / "state", keys.public_path)
    store.violations = []
    (store.root / "tuf").mkdir()
    (store.root / "tuf" / "root.json").write_bytes(fleet.root)
    store.install(packages["1.0.0"])
    store.commit()
    store.install(packages["1.1.0"])
    store.commit()
    assert (store.current_version(), store.previous_version()) == ("1.1.0", "1.0.0")
    return store


def _offers(fleet, packages):
    return {v: fleet.add(f"digits/{v}/digits-{v}.lsp", packages[v].read_bytes()) for v in ("1.0.0", "1.1.0")}


def test_the_reported_interleaving_keeps_both_models(tmp_path, keys, fleet, packages):
    """The QA repro, step by step: the loop has read current = 1.1.0 and is loading it when the
    updater switches to 1.0.0 (the normal answer after an aborted rollout); then the load fails."""
    store = _store(tmp_path, keys, fleet, packages)
    offers = _offers(fleet, packages)
    client = DeviceClient("http://fleet.test", "d1", "tok", transport=fleet.transport())
    updater = Updater(store, client, Clock(store.root / "clock.json"), model_id="digits")

    lease = store.lease_current()  # the loop read current under the lock and holds it
    assert lease is not None and lease.version == "1.1.0"
    fleet.assignment = offers["1.0.0"]
    assert updater.poll_once()["action"] == "reverted-by-server"
    assert (store.current_version(), store.previous_version()) == ("1.0.0", "1.1.0")
    LoadedModel(lease.folder, num_threads=1).close()  # the folder it was loading is still whole
    # the load of 1.1.0 "fails": the revert names 1.1.0, which is no longer current, so nothing happens
    outcome = store.revert("model failed to load: simulated", from_version=lease.version, mark_failed=False)
    assert not outcome.done and outcome.to == "1.0.0"
    store.release(lease)
    assert (store.current_version(), store.previous_version()) == ("1.0.0", "1.1.0")
    assert store.violations == [] and invariant_problems(store) == []
    assert [r for r in store.take_reports() if "failed to load" in r["reason"]] == []


def test_leased_version_outlives_its_slot_and_goes_at_release(tmp_path, keys, fleet, packages):
    store = _store(tmp_path, keys, fleet, packages)
    lease = store.lease_current()
    store.install(packages["1.2.0"])
    store.commit()  # 1.0.0 goes now; 1.1.0 is the fallback
    outcome = store.revert("NaN in the health window", from_version="1.2.0")  # device revert, 1.2.0 failed
    assert outcome.done and outcome.to == "1.1.0" and store.previous_version() is None
    assert sorted(p.name for p in store.versions.iterdir()) == ["1.1.0"]
    lease2 = store.lease_current()
    store.discard_slot("current", "simulated damage")  # a damaged slot still in use: deleted at release
    assert (store.versions / "1.1.0").is_dir() and store.current_version() is None
    store.release(lease2)
    store.release(lease)
    assert list(store.versions.iterdir()) == []


@pytest.mark.parametrize("seed", range(4))
def test_updater_and_loop_race_with_assignments_flipping(tmp_path, keys, fleet, packages, digit_pngs, seed):
    """The real loop and updater threads; the server's answer flips between 1.0.0 and 1.1.0 (and a
    rollback-to-control) at every check-in; model loads get seeded random delays so that swaps land
    inside them. The invariant is checked after every slot operation."""
    rng = random.Random(seed)
    store = _store(tmp_path, keys, fleet, packages)
    offers = _offers(fleet, packages)
    control = {**offers["1.0.0"], "reason_code": "rollback-to-control", "allow_downgrade_to": "1.0.0"}
    answers = [offers["1.0.0"], offers["1.1.0"], control]
    checkins = [0]

    real_handle = fleet.handle

    def handle(request):
        if request.url.path.endswith("/checkin"):
            checkins[0] += 1
            fleet.assignment = rng.choice(answers)
            time.sleep(rng.uniform(0, 0.004))
        return real_handle(request)

    import httpx

    client = DeviceClient("http://fleet.test", "d1", "tok", transport=httpx.MockTransport(handle))
    updater = Updater(store, client, Clock(store.root / "clock.json"), model_id="digits", interval=0.005)
    updater.jitter = 0.9

    real_init = LoadedModel.__init__
    loads = [0]

    def slow_init(self, folder, *args, **kwargs):
        loads[0] += 1
        time.sleep(rng.uniform(0, 0.02))  # the window the updater used to delete the folder in
        real_init(self, folder, *args, **kwargs)

    health = HealthWindow(store, inferences=3, seconds=3600)
    loop = AgentLoop(
        store,
        ImageFolderSource(digit_pngs, loop=True),
        FileSink(tmp_path / "out.jsonl"),
        Spool(tmp_path / "spool"),
        updater=updater,
        health=health,
        window_s=3600,
        num_threads=1,
    )

    def stop_after_checkins() -> None:
        deadline = time.monotonic() + 60
        while checkins[0] < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        loop.stop()

    loop_module.LoadedModel.__init__ = slow_init  # type: ignore[method-assign]
    try:
        runner = threading.Thread(target=loop.run)
        runner.start()
        stop_after_checkins()
        runner.join(120)
        assert not runner.is_alive(), "the loop did not finish"
    finally:
        loop_module.LoadedModel.__init__ = real_init  # type: ignore[method-assign]
    assert checkins[0] >= 20 and loads[0] >= 5, (checkins, loads)  # the race was actually exercised
    assert store.violations == [], store.violations[:5]
    assert invariant_problems(store) == [] and store.in_use() == set()
    assert loop.dropped == 0, "frames were dropped for want of a model"
    assert not [r for r in store.state()["reports"] if "failed to load" in r["reason"]]
    assert store.state()["failed"] == {}  # nothing good was condemned by the race
