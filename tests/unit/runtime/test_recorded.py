"""RecordedRunner replays outputs computed elsewhere by the content of each sample, in any batching."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.errors import InferenceError
from liteship.runtime.recorded import RecordedRunner
from liteship.types import TensorSpec


def test_outputs_follow_the_samples_in_any_order_and_batch():
    x = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    y = x.sum(axis=1, keepdims=True)
    r = RecordedRunner(
        {"x": x}, {"y": y}, input_specs=[TensorSpec("x", (-1, 3), "float32")],
        output_specs=[TensorSpec("y", (-1, 1), "float32")], backend="elsewhere", name="m",
    )  # fmt: skip
    np.testing.assert_array_equal(r.infer({"x": x[[4, 0, 2]]})["y"], y[[4, 0, 2]])
    with pytest.raises(InferenceError, match="sample 1 of this batch was not recorded"):
        r.infer({"x": np.stack([x[0], x[0] + 1])})
