"""Field capture on the device (issue 25.1): rules, sampling, quotas, disk cap, failed writes, kill -9."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from liteship.agent.capture import Capture, CapturePolicy, decode_sample
from liteship.errors import CapturePolicyError

SRC = str(Path(__file__).resolve().parents[3] / "src")


def policy(**over) -> bytes:
    doc = {
        "model_id": "digits",
        "rules": [{"trigger": "random", "rate": 1.0}],
        "per_hour": 100,
        "per_day": 1000,
        "disk_bytes": 10 << 20,
        "retention_s": 86400,
        "expires": time.time() + 3600,
    }
    doc.update(over)
    return json.dumps(doc).encode()


def offer(cap: Capture, *, confidence=0.9, klass=3, out_of_range=False, version="1.0.0", model_id="digits"):
    x = np.random.default_rng(0).random((1, 8, 8, 1), dtype=np.float32)
    return cap.offer(
        model_id=model_id,
        version=version,
        x=x,
        scores=np.eye(10)[klass],
        klass=klass,
        confidence=confidence,
        out_of_range=out_of_range,
        preprocessing={"mean": [0.0], "std": [16.0]},
    )


def test_off_by_default_nothing_is_kept(tmp_path):
    cap = Capture(tmp_path / "capture")
    assert cap.policy is None
    assert all(offer(cap) is None for _ in range(20))
    cap.drain()
    assert cap.pending() == [] and cap.status()["on"] is False


@pytest.mark.parametrize(
    "bad, why",
    [
        ({"rules": []}, "rules"),
        ({"rules": [{"trigger": "everything"}]}, "trigger"),
        ({"rules": [{"trigger": "low-confidence"}]}, "threshold"),
        ({"rules": [{"trigger": "random", "rate": 2}]}, "rate"),
        ({"rules": [{"trigger": "class", "classes": ["7"]}]}, "classes"),
        ({"per_hour": 10**9}, "per_hour"),
        ({"disk_bytes": -1}, "disk_bytes"),
        ({"retention_s": float("inf")}, "retention_s"),
    ],
)
def test_a_malformed_or_unbounded_policy_is_refused(bad, why):
    with pytest.raises(CapturePolicyError, match=why):
        CapturePolicy.parse(policy(**bad))


def test_a_policy_for_another_model_is_refused_and_capture_stays_off(tmp_path):
    cap = Capture(tmp_path / "capture")
    with pytest.raises(CapturePolicyError, match="for model 'digits'"):
        cap.set_policy(policy(), sha256="a" * 64, model_id="faces")
    assert cap.policy is None and not (tmp_path / "capture" / "policy.json").exists()


def test_triggers_choose_what_is_kept_and_the_sample_holds_input_output_and_meta(tmp_path):
    cap = Capture(tmp_path / "capture", seed=1)
    rules = [
        {"trigger": "low-confidence", "threshold": 0.5},
        {"trigger": "out-of-range"},
        {"trigger": "class", "classes": [7]},
    ]
    cap.set_policy(policy(rules=rules), sha256="b" * 64, model_id="digits")
    assert offer(cap, confidence=0.9, klass=3) is None  # no rule matches
    assert offer(cap, confidence=0.3) == "low-confidence"
    assert offer(cap, out_of_range=True) == "out-of-range"
    assert offer(cap, klass=7) == "class"
    assert offer(cap, klass=7, model_id="faces") is None  # not the policy's model
    cap.drain()
    files = cap.pending()
    assert len(files) == 3
    arrays, meta = decode_sample(files[0].read_bytes())
    assert arrays["x"].shape == (8, 8, 1) and arrays["x"].dtype == np.float32
    assert arrays["scores"].shape == (10,)
    assert meta["trigger"] == "low-confidence" and meta["version"] == "1.0.0" and meta["policy"] == "b" * 64
    assert meta["preprocessing"] == {"mean": [0.0], "std": [16.0]} and meta["confidence"] == 0.3
    assert cap.status()["captured"] == 3


def test_versions_and_expiry_limit_the_policy(tmp_path):
    cap = Capture(tmp_path / "capture")
    cap.set_policy(policy(versions=["1.1.0"]), sha256="c" * 64)
    assert offer(cap, version="1.0.0") is None and offer(cap, version="1.1.0") == "random"
    cap.set_policy(policy(expires=time.time() - 1), sha256="d" * 64)
    assert offer(cap) is None


def test_the_sampling_rate_keeps_about_that_share(tmp_path):
    cap = Capture(tmp_path / "capture", seed=7, queue_size=1000)
    cap.set_policy(policy(rules=[{"trigger": "random", "rate": 0.1}], per_hour=3600), sha256="e" * 64)
    kept = sum(offer(cap) is not None for _ in range(2000))
    assert 140 <= kept <= 260, kept


def test_hourly_and_daily_quotas_hold_across_a_restart(tmp_path):
    cap = Capture(tmp_path / "capture")
    cap.set_policy(policy(per_hour=5, per_day=8), sha256="f" * 64)
    assert sum(offer(cap) is not None for _ in range(20)) == 5
    cap.close()
    again = Capture(tmp_path / "capture")  # a restart does not reset the hour's count
    assert sum(offer(again) is not None for _ in range(20)) == 0
    again.counts.hour_start -= 3601  # the next hour: the day's quota (8) is what is left
    assert sum(offer(again) is not None for _ in range(20)) == 3
    again.close()
    assert len(again.pending()) == 8 and again.counts.dropped_quota == 15 + 20 + 17


def test_the_disk_cap_is_never_passed(tmp_path):
    one = len(Path(_one_sample(tmp_path / "probe")).read_bytes())
    cap = Capture(tmp_path / "capture")
    cap.set_policy(policy(disk_bytes=3 * one + one // 2), sha256="1" * 64)
    for _ in range(10):
        offer(cap)
        cap.drain()
    files = cap.pending()
    assert len(files) == 3
    assert sum(f.stat().st_size for f in files) <= 3 * one + one // 2
    assert cap.counts.dropped_disk == 7


def _one_sample(root: Path) -> Path:
    cap = Capture(root)
    cap.set_policy(policy(), sha256="0" * 64)
    offer(cap)
    cap.close()
    return cap.pending()[0]


WRITER = textwrap.dedent(
    """
    import json, resource, signal, sys, time
    import numpy as np
    from liteship.agent.capture import Capture
    root, limit = sys.argv[1], int(sys.argv[2])
    if limit:  # the kernel refuses writes past this file size (EFBIG), as a full disk refuses them
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    cap = Capture(root, queue_size=4)
    doc = {"model_id": "digits", "rules": [{"trigger": "random"}], "per_hour": 3600, "per_day": 20000,
           "disk_bytes": 1 << 30, "retention_s": 86400, "expires": time.time() + 3600}
    cap.set_policy(json.dumps(doc).encode(), sha256="9" * 64)
    x = np.zeros((1, 32, 32, 3), np.float32)
    n = 0
    print("ready", flush=True)
    while n < int(sys.argv[3]):
        x[...] = n
        if cap.offer(model_id="digits", version="1.0.0", x=x, scores=np.arange(10.0), klass=n % 10,
                     confidence=0.5, out_of_range=False):
            n += 1
        time.sleep(0.001)
    cap.close()
    print(json.dumps(cap.status()), flush=True)
    """
)


def _writer(root: Path, *, fsize_limit: int = 0, count: int = 10**6, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(fsize_limit), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC, **(env or {})},
    )


def test_a_failing_write_drops_the_sample_and_inference_goes_on(tmp_path):
    """Real write failures from the kernel (RLIMIT_FSIZE: EFBIG, as ENOSPC on a full disk): every
    sample is dropped and counted, no temporary file stays, the process ends normally."""
    p = _writer(tmp_path / "capture", fsize_limit=2000, count=20)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    status = json.loads(out.strip().splitlines()[-1])
    assert status["dropped_error"] == 20 and status["captured"] == 0 and status["pending"] == 0
    assert not list((tmp_path / "capture" / "samples").iterdir())
    assert "capture write failed" in err


def test_kill_9_never_leaves_a_corrupt_sample(tmp_path):
    """20 kills at random moments of a process capturing as fast as it can (crash points paused so
    kills land between the writes): every sample left loads, temporaries are cleaned at the next
    start, and the quota counter never counts fewer samples than there are files."""
    rng = random.Random(25)
    root = tmp_path / "capture"
    kills = 0
    for _ in range(20):
        p = _writer(root, env={"LITESHIP_AGENT_CRASH_POINT_PAUSE_S": "0.002"})
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        kills += 1
        cap = Capture(root)  # the next start
        assert not list(cap.samples.glob(".*"))
        for f in cap.pending():
            arrays, meta = decode_sample(f.read_bytes())
            assert arrays["x"].shape == (32, 32, 3) and float(arrays["x"].max()) == float(arrays["x"].min())
            assert meta["model_id"] == "digits" and f.name.endswith(f"{meta['sample_id']}.npz")
        assert cap.counts.captured >= len(cap.pending())
    assert kills == 20 and len(Capture(root).pending()) > 20
