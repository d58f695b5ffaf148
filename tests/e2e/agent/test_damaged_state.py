"""Half-written or damaged state files under the real agent process: the agent keeps running its
verified model, says which file was damaged, and keeps the damaged copy for a person (fleetaudit).

Every writer is atomic (temp file, fsync, rename), so the agent itself never leaves such a file; a
failing SD card, a file system without ordered writes, or a hand edit can.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from liteship.agent.store import Store


def run(cli, state: Path, frames: Path, key: str) -> subprocess.CompletedProcess:
    args = ("agent", "run", "--state-dir", str(state), "--source", f"images:{frames}", "--threads", "1")
    return cli(*args, "--key", key, "--max-frames", "5", env={"TF_CPP_MIN_LOG_LEVEL": "3"})


def logs(r: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text[: len(text) // 2], id="truncated"),
        pytest.param(lambda text: "", id="empty"),
        pytest.param(lambda text: "[1, 2, 3]", id="a-list"),
        pytest.param(lambda text: '{"failed": "1.1.0", "pending": 7, "reports": {}}', id="wrong-types"),
    ],
)
def test_a_damaged_state_file_keeps_the_model_running_and_says_so(
    cli, keys, packages, digit_pngs, tmp_path, damage
):
    state = tmp_path / "st"
    for pkg in ("1.0.0", "1.1.0"):
        r = cli("agent", "install", "--state-dir", str(state), "--key", keys.public_path, str(packages[pkg]))
        assert r.returncode == 0, r.stderr
    before = (state / "state.json").read_text()
    (state / "state.json").write_text(damage(before))

    r = run(cli, state, digit_pngs, keys.public_path)
    assert r.returncode == 0, r.stderr  # used to crash on a list ('list' object has no attribute …)
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 5 and {x["version"] for x in results} == {"1.1.0"}, r.stdout
    assert Store(state).current_version() == "1.1.0"  # the slots are untouched
    entries = logs(r)
    stopped = next(e for e in entries if e["msg"] == "agent stopped")
    assert stopped["frames"] == 5
    state_after = json.loads((state / "state.json").read_text())
    assert isinstance(state_after["failed"], dict) and isinstance(state_after["reports"], list)
    if damage(before).startswith("{") and damage(before).endswith("}"):  # a JSON object: fields reset
        return
    warned = [e for e in entries if "state.json is damaged" in e["msg"]]
    assert warned and "kept as state.json.damaged-" in warned[0]["msg"], entries
    kept = list(state.glob("state.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == damage(before)  # nothing lost: kept for a person


def test_a_damaged_clock_file_is_not_trusted_and_is_kept(tmp_path):
    from liteship.agent.clock import BUILD_FLOOR, Clock

    for text in ('{"last_good_time": 1e999', '{"last_good_time": Infinity}', '["x"]'):
        path = tmp_path / "clock.json"
        path.write_text(text)
        clock = Clock(path, now=lambda: BUILD_FLOOR + 100)
        assert clock.read().trusted and clock.last_good() is None  # not parked in the future forever
        clock.confirm()
        assert clock.last_good() == BUILD_FLOOR + 100


def test_a_damaged_device_file_runs_offline_with_the_model_and_says_how_to_fix_it(
    cli, keys, packages, digit_pngs, tmp_path
):
    state = tmp_path / "st"
    r = cli("agent", "install", "--state-dir", str(state), "--key", keys.public_path, str(packages["1.0.0"]))
    assert r.returncode == 0, r.stderr
    damaged = '{"server": "http://127.0.0.1:9", "token": "abc'  # cut off mid-write
    (state / "device.json").write_text(damaged)
    r = run(cli, state, digit_pngs, keys.public_path)
    assert r.returncode == 0, r.stderr
    assert len([line for line in r.stdout.splitlines() if line.startswith("{")]) == 5
    warned = [e for e in logs(r) if "device.json is damaged" in e["msg"]]
    assert warned and "liteship agent enroll" in warned[0]["msg"], r.stderr
    assert (state / "device.json").read_text() == damaged  # left for a person to restore
