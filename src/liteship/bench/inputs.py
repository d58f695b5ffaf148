"""Feeds for benchmarking, prepared before any timer starts.

Random feeds follow LiteRT's ``benchmark_litert_model.py``: floats uniform in [-1, 1), integers uniform
in [max(min, -128), min(max, 127)], booleans random. Every feed is already in the model's own dtype
(dataset samples for quantized inputs are quantized here with the model's scale/zero-point), so the
timed ``infer`` never quantizes in Python.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liteship.data import Dataset, load_dataset
from liteship.errors import BenchmarkError
from liteship.runtime.quant import quantize
from liteship.types import TensorSpec

#: At most this many dataset samples (and this many bytes of them) are loaded; the runs cycle through them.
MAX_DATASET_SAMPLES = 256
MAX_DATASET_BYTES = 64 * 1024 * 1024


def _static_shape(spec: TensorSpec) -> tuple[int, ...]:
    return tuple(1 if s in (-1, None) else int(s) for s in spec.shape)


def random_feed(specs: list[TensorSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """One random feed ``{name: array}`` in each input's dtype; dynamic dimensions become 1."""
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        shape = _static_shape(spec)
        if np.issubdtype(dtype, np.floating):
            arr = rng.uniform(-1.0, 1.0, shape).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arr = rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape, dtype=dtype)
        elif dtype == np.bool_:
            arr = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            raise BenchmarkError(
                f"cannot make random data for input {spec.describe()}: dtype {dtype} is not numeric.",
                hint="Benchmark it with a dataset (data=...).",
            )
        feed[spec.name] = arr
    return feed


def to_model_dtype(x: Any, spec: TensorSpec) -> np.ndarray:
    """One sample in ``spec``'s dtype with a batch dimension: float data for quantized inputs is quantized."""
    arr = np.asarray(x)
    if arr.ndim == len(spec.shape) - 1:
        arr = arr[None]
    want = np.dtype(spec.dtype)
    if arr.dtype == want:
        return arr
    if spec.quantized and np.issubdtype(arr.dtype, np.floating):
        assert spec.scale is not None and spec.zero_point is not None
        return quantize(arr, spec.scale, spec.zero_point, want)
    return arr.astype(want)


def dataset_feeds(data: Any, specs: list[TensorSpec]) -> tuple[list[dict[str, np.ndarray]], str]:
    """Load up to :data:`MAX_DATASET_SAMPLES` samples (:data:`MAX_DATASET_BYTES`) as feeds, and the source."""
    shape = specs[0].shape if specs else None
    ds = data if isinstance(data, Dataset) else load_dataset(data, input_shape=shape)
    ds = ds.take(MAX_DATASET_SAMPLES)
    feeds: list[dict[str, np.ndarray]] = []
    total = 0
    for x, _ in ds:
        if total >= MAX_DATASET_BYTES:
            break
        if isinstance(x, dict):
            missing = sorted({s.name for s in specs} - set(x))
            if missing:
                raise BenchmarkError(
                    f"dataset {ds.source!r} samples lack inputs {missing}.",
                    hint="Expected inputs: " + "; ".join(s.describe() for s in specs) + ".",
                )
            feeds.append({s.name: to_model_dtype(x[s.name], s) for s in specs})
        elif len(specs) == 1:
            feeds.append({specs[0].name: to_model_dtype(x, specs[0])})
        else:
            raise BenchmarkError(
                f"dataset {ds.source!r} gives one array per sample, but the model has {len(specs)} inputs.",
                hint="Use a callable dataset yielding {input_name: array} dicts.",
            )
        total += sum(a.nbytes for a in feeds[-1].values())
    return feeds, ds.source


__all__ = ["random_feed", "dataset_feeds", "to_model_dtype", "MAX_DATASET_SAMPLES", "MAX_DATASET_BYTES"]
