import json

import pytest

from liteship.agent.clock import BUILD_FLOOR, Clock
from liteship.agent.telemetry import Aggregator, Spool, confidence_bin


def test_aggregator_bins_and_out_of_range():
    agg = Aggregator("digits", "1.0.0", calibration_range=(0.0, 16.0))
    import numpy as np

    agg.record(confidence=0.99, latency_ms=0.7, x=np.full(4, 8.0))
    agg.record(confidence=0.42, latency_ms=30, x=np.full(4, 40.0))
    agg.record_error()
    w = agg.close()
    assert w["inferences"] == 2 and w["errors"] == 1
    assert w["confidence_hist"][19] == 1 and w["confidence_hist"][8] == 1
    assert w["out_of_range_fraction"] == 0.5
    assert sum(w["latency_hist"]) == 2
    assert agg.close() is None  # empty windows are not sent
    assert confidence_bin(1.0) == 19 and confidence_bin(0.0) == 0 and confidence_bin(float("nan")) == 0


def test_spool_is_bounded_counts_drops_and_sends_each_once(tmp_path):
    spool = Spool(tmp_path, max_windows=3)
    for i in range(5):
        spool.put({"window_id": f"w{i}", "inferences": i})
    assert len(spool) == 3 and spool.dropped == 2
    got = []

    def flaky(w):
        if w["window_id"] == "w3":
            raise ConnectionError("server down")
        got.append(w)

    with pytest.raises(ConnectionError):
        spool.flush(flaky)
    assert [w["window_id"] for w in got] == ["w2"] and got[0]["dropped_windows"] == 2
    assert len(spool) == 2 and spool.dropped == 0  # w2 delivered, the rest kept
    assert spool.flush(got.append) == 2
    assert [w["window_id"] for w in got] == ["w2", "w3", "w4"]
    assert "dropped_windows" not in got[1]
    assert len(spool) == 0


def test_clock_treats_1970_as_unknown_and_keeps_last_good(tmp_path):
    now = [BUILD_FLOOR + 1000.0]
    clock = Clock(tmp_path / "clock.json", now=lambda: now[0])
    assert clock.read().trusted
    clock.confirm()
    assert json.loads((tmp_path / "clock.json").read_text())["last_good_time"] == now[0]
    now[0] = 0.0  # Pi booted without RTC
    r = clock.read()
    assert not r.trusted and r.best_estimate == BUILD_FLOOR + 1000.0
    clock.confirm()  # an untrusted clock never overwrites the last good time
    assert clock.last_good() == BUILD_FLOOR + 1000.0
    clock.confirm(server_time=BUILD_FLOOR + 5000.0)
    assert clock.last_good() == BUILD_FLOOR + 5000.0
