"""Activation range setting on a real calibrated TFLite model: where plain min/max loses, mse wins."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.errors import UsageError
from liteship.quantize.ranges import _mse_range, _percentile_range, check_range_setting, set_ranges


@pytest.fixture(scope="module")
def spiked():
    """A small CNN calibrated on ordinary images of which one has a single hot pixel (100× the rest, as a
    dead-pixel or corrupted frame would): min/max stretches the conv activation's range ~30× to fit a few
    dozen of its 700,000 calibration values, and int8 resolution is lost on every ordinary input."""
    import keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Conv2D(2, 1, name="out"),
        ]
    )
    x = rng.normal(size=(300, 32, 32, 1)).astype(np.float32)
    calib = x[:200].copy()
    calib[17, 10, 10, 0] = 100.0
    return model, calib, x[200:]


def _sqnr(model_bytes: bytes, x: np.ndarray, ref: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for row in x:
        interp.set_tensor(i["index"], row[None].astype(np.float32))
        interp.invoke()
        outs.append(interp.get_tensor(o["index"])[0])
    err = np.asarray(outs) - ref
    return float(10 * np.log10((ref**2).mean() / (err**2).mean()))


def test_range_setting_recovers_what_plain_minmax_loses_to_an_outlier(spiked):
    from liteship.convert.converter import calibrated_model
    from liteship.quantize.denylist import quantize_calibrated

    model, calib, test = spiked
    ref = model.predict(test, verbose=0)
    cal = calibrated_model(model, quantize="int8", io_type="float32", calibration=calib)
    samples = [[row[None]] for row in calib]
    plain_db = _sqnr(quantize_calibrated(cal.model, io_type="float32"), test, ref)
    tuned, report = set_ranges(cal.model, samples, "percentile")
    assert report.narrowed >= 1 and report.median_ratio is not None and report.median_ratio < 0.5
    pct_db = _sqnr(quantize_calibrated(tuned, io_type="float32"), test, ref)
    assert pct_db > plain_db + 6.0, (plain_db, pct_db)
    # mse weighs the outlier's clipping error too: it never does worse than min/max on the ordinary data
    tuned, _ = set_ranges(cal.model, samples, "mse")
    mse_db = _sqnr(quantize_calibrated(tuned, io_type="float32"), test, ref)
    assert mse_db > plain_db - 0.5, (plain_db, mse_db)
    same, unchanged = set_ranges(cal.model, samples, "minmax")
    assert same == cal.model and unchanged.narrowed == 0


def test_mse_keeps_the_range_of_a_uniform_tensor_and_clips_a_long_tail():
    uniform = np.full(2048, 100, dtype=np.int64)
    lo, hi = _mse_range(uniform, 0.0, 6.0)
    assert lo == 0.0 and hi == pytest.approx(6.0)
    tail = np.zeros(2048, dtype=np.int64)
    tail[:200] = 10_000  # almost everything in the first 10 % of the range…
    tail[-1] = 1  # …and one outlier at the end
    lo, hi = _mse_range(tail, 0.0, 10.0)
    # the expected-error optimum is 2.8: rounding 1e-5 plus the clipped outlier 3e-5
    assert lo == 0.0 and hi < 4.0
    p_lo, p_hi = _percentile_range(tail, 0.0, 10.0, 99.99)
    assert p_lo == 0.0 and p_hi < 1.1


def test_bad_range_settings_are_usage_errors():
    with pytest.raises(UsageError, match="unknown range setting 'max'"):
        check_range_setting("max")
    with pytest.raises(UsageError, match=r"percentile 20 is out of range"):
        check_range_setting("percentile", 20)
