"""Maintenance windows (issue 24.4): the agent installs only inside its update windows (device-local
time), except an emergency revert (``rollback-to-control``). The clock is the test hook."""

from __future__ import annotations

import datetime as dt

import pytest

from liteship.agent.client import DeviceClient
from liteship.agent.clock import Clock
from liteship.agent.store import Store
from liteship.agent.updater import LOCAL_TIME_ENV, Updater


@pytest.fixture
def updater(tmp_path, keys, packages):
    store = Store(tmp_path / "state", keys.public_path)
    store.install(packages["1.0.0"], expected_version="1.0.0")
    client = DeviceClient("http://127.0.0.1:9", "dev", "token")  # nothing listens: any call would fail
    return Updater(store, client, Clock(tmp_path / "state" / "clock.json"))


def offer(windows, code="stable"):
    return {
        "version": "1.1.0",
        "target_path": "m/1.1.0/m-1.1.0.lsp",
        "update_windows": windows,
        "reason_code": code,
    }


@pytest.mark.parametrize(
    ("now", "windows", "open_"),
    [
        ("03:00", ["02:00-05:00"], True),
        ("05:00", ["02:00-05:00"], False),  # the end is excluded
        ("12:00", ["02:00-05:00"], False),
        ("23:30", ["22:00-04:00"], True),  # wraps midnight
        ("01:59", ["22:00-04:00"], True),
        ("12:00", ["22:00-04:00", "11:00-13:00"], True),
        ("12:00", ["bogus"], True),  # malformed windows never lock a device out
        ("12:00", None, True),
    ],
)
def test_the_window_decides(updater, monkeypatch, now, windows, open_):
    monkeypatch.setenv(LOCAL_TIME_ENV, now)
    assert (updater.outside_windows(offer(windows)) is None) is open_


def test_outside_its_window_an_update_waits_and_nothing_is_fetched(updater, monkeypatch):
    monkeypatch.setenv(LOCAL_TIME_ENV, "12:00")
    d = updater.apply(offer(["02:00-05:00"]))
    assert (d["action"], d["code"]) == ("deferred", "update-window") and "local time 12:00" in d["reason"]
    assert updater.store.current_version() == "1.0.0"
    assert updater.store.state()["last_decision"]["action"] == "deferred"


def test_an_emergency_revert_is_not_deferred(updater, monkeypatch):
    monkeypatch.setenv(LOCAL_TIME_ENV, "12:00")
    assert updater.outside_windows(offer(["02:00-05:00"], code="rollback-to-control")) is None
    # and inside the window the update goes on to the download (the server here is unreachable)
    monkeypatch.setenv(LOCAL_TIME_ENV, "03:00")
    assert updater.apply(offer(["02:00-05:00"]))["action"] != "deferred"


def test_the_real_clock_without_the_hook(updater, monkeypatch):
    monkeypatch.delenv(LOCAL_TIME_ENV, raising=False)
    assert abs((updater.local_time() - dt.datetime.now()).total_seconds()) < 5
