"""InputGridRunner: a float model fed its inputs exactly as an integer model's QUANTIZE rounds them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liteship.errors import InferenceError
from liteship.runtime import LiteRTRunner
from liteship.runtime.input_grid import InputGridRunner, round_to_grid
from liteship.types import TensorSpec


@settings(max_examples=200, deadline=None)
@given(
    x=st.lists(st.floats(-4.0, 4.0, allow_nan=False, width=32), min_size=1, max_size=16),
    scale=st.floats(1e-3, 0.5),
    zero_point=st.integers(-128, 127),
)
def test_rounded_values_lie_on_the_grid_within_half_a_step_inside_its_range(x, scale, zero_point):
    spec = TensorSpec("x", (len(x),), "int8", scale=scale, zero_point=zero_point)
    xs = np.array(x, np.float32)
    r = round_to_grid(xs, spec)
    q = r / np.float32(scale) + zero_point
    assert np.allclose(q, np.round(q), atol=1e-3)  # on the grid
    lo, hi = np.float32(scale) * (-128 - zero_point), np.float32(scale) * (127 - zero_point)
    inside = (xs >= lo) & (xs <= hi)
    assert np.all(np.abs(r[inside] - xs[inside]) <= scale / 2 * (1 + 1e-4) + 1e-6)
    assert np.all((r >= lo - 1e-5) & (r <= hi + 1e-5))  # clipped like the int8 range


def test_a_float_spec_leaves_inputs_alone():
    x = np.array([0.123456], np.float32)
    assert round_to_grid(x, TensorSpec("x", (1,), "float32")) is x


def test_the_float_model_sees_what_the_int8_model_sees(tflite_float, tflite_int8, digits):
    # the int8 model quantizes a float feed with its input's scale/zero point; fed those very values (the
    # dequantized grid points), it must give the same outputs as fed the raw floats
    x = digits[2][:8]
    with LiteRTRunner(tflite_int8) as int8, LiteRTRunner(tflite_float) as flt:
        grid = int8.input_specs[0]
        assert grid.quantized
        rounded = round_to_grid(x, grid)
        np.testing.assert_array_equal(
            int8.infer(rounded)[int8.output_specs[0].name], int8.infer(x)[int8.output_specs[0].name]
        )
        runner = InputGridRunner(flt, [grid])
        out = runner.infer(x)[flt.output_specs[0].name]
        np.testing.assert_array_equal(out, flt.infer(rounded)[flt.output_specs[0].name])
        assert not np.array_equal(rounded, x)  # the rounding did something


def test_inputs_that_cannot_be_paired_are_a_clear_error(tflite_float, tflite_int8):
    with LiteRTRunner(tflite_float) as flt, LiteRTRunner(tflite_int8) as int8:
        with pytest.raises(InferenceError, match="cannot be paired"):
            InputGridRunner(flt, [])
        with pytest.raises(InferenceError, match="needs a float model"):
            InputGridRunner(int8, int8.input_specs)
