"""Golden inputs and expected outputs: what the device runs to smoke-test a model before swapping it in.

``golden.npz`` holds ``input_<i>.npy`` / ``output_<i>.npy`` (index order of the manifest's
``golden.inputs`` / ``golden.outputs`` names), each stacked along a leading sample axis. It is written in
the same canonical zip form as the package itself, so it is byte-for-byte reproducible.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liteship.data import load_numpy
from liteship.errors import DataError, PackageError
from liteship.package.archive import write_archive
from liteship.runtime.base import Runner
from liteship.types import TensorSpec

DEFAULT_SAMPLES = 4
MAX_SAMPLES = 256
MAX_TOLERANCE = 1e6  # beyond this a golden comparison checks nothing
MAX_LATENCY_BUDGET_MS = 3_600_000.0  # one hour per inference
GoldenLike = np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray] | str | Path


def _load_file(path: Path, specs: list[TensorSpec]) -> np.ndarray | dict[str, np.ndarray]:
    if not path.is_file():
        raise PackageError(
            f"golden inputs file {str(path)!r} does not exist.", hint="Give a .npy or .npz file."
        )

    try:
        data = load_numpy(path)
    except DataError as e:
        raise PackageError(f"golden inputs: {e.message}", hint=e.hint) from e
    if isinstance(data, np.ndarray):
        return data
    names = {s.name for s in specs}
    if names <= set(data):
        return {n: data[n] for n in names}
    if len(specs) == 1 and data:
        return data["x"] if "x" in data else next(iter(data.values()))
    raise PackageError(
        f"{str(path)!r} holds arrays {sorted(data)}; expected one per model input: {sorted(names)}."
    )


def golden_feeds(
    golden: GoldenLike | None,
    specs: list[TensorSpec],
    calibration_range: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """``{input name: array (N, ...)}`` from what the caller gave, or seeded synthetic samples.

    Args:
        golden: An array (one-input models; ``(N, ...)`` or one sample), ``{name: array}``, a list in
            input order, a ``.npy``/``.npz`` path, or ``None`` for synthetic inputs.
        specs: The model's input specs.
        calibration_range: ``(min, max)`` for synthetic float inputs. Defaults to ``(0, 1)``.
    """
    if isinstance(golden, (str, Path)):
        golden = _load_file(Path(golden), specs)
    if golden is None:
        rng = np.random.default_rng(0)
        lo, hi = calibration_range or (0.0, 1.0)
        feeds = {}
        for s in specs:
            shape = (DEFAULT_SAMPLES, *(max(d, 1) for d in s.shape[1:]))
            if np.dtype(s.dtype).kind == "f" or s.quantized:
                feeds[s.name] = rng.uniform(lo, hi, shape).astype(np.float32)
            else:
                feeds[s.name] = np.zeros(shape, dtype=s.dtype)
        return feeds
    if isinstance(golden, np.ndarray):
        if len(specs) != 1:
            raise PackageError(
                f"one golden array was given for a model with {len(specs)} inputs; give a dict."
            )
        golden = {specs[0].name: golden}
    elif not isinstance(golden, Mapping):
        if len(golden) != len(specs):
            raise PackageError(
                f"{len(golden)} golden arrays were given for a model with {len(specs)} inputs."
            )
        golden = {s.name: np.asarray(a) for s, a in zip(specs, golden, strict=True)}
    return _stack_checked(dict(golden), specs)


def _stack_checked(golden: dict[str, Any], specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    names = [s.name for s in specs]
    if sorted(golden) != sorted(names):
        raise PackageError(f"golden inputs are named {sorted(golden)}; the model's inputs are {names}.")
    feeds, counts = {}, set()
    for s in specs:
        arr = np.asarray(golden[s.name])
        if arr.ndim == len(s.shape) - 1:
            arr = arr[None]
        if arr.ndim != len(s.shape) or arr.dtype == object:
            raise PackageError(
                f"golden input {s.name!r} has shape {list(arr.shape)}; expected (N, ...) like {list(s.shape)}."
            )
        check_finite(arr, f"golden input {s.name!r}")
        feeds[s.name] = np.ascontiguousarray(arr)
        counts.add(len(arr))
    if len(counts) != 1 or not 1 <= min(counts) <= MAX_SAMPLES:
        raise PackageError(
            f"golden inputs need the same sample count, 1 to {MAX_SAMPLES}; got {sorted(counts)}."
        )
    return feeds


def check_finite(arr: np.ndarray, what: str) -> None:
    """Refuse float data with NaN or Inf: a smoke test on it passes or fails by accident."""
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad: np.ndarray | list[int] = (
            np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)) if arr.ndim else []
        )
        raise PackageError(
            f"{what} contains NaN or Inf ({int(np.sum(~np.isfinite(arr)))} of {arr.size} values, in "
            f"samples {list(map(int, bad[:5]))}{' …' if len(bad) > 5 else ''}); a smoke test on it proves "
            "nothing.",
            hint="Give finite golden inputs, e.g. samples from the validation set.",
        )


def run_golden(runner: Runner, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[float]]:
    """Run every sample alone (batch 1): ``({output name: (N, ...)}, [latency ms per sample])``."""
    n = len(next(iter(feeds.values())))
    outputs: dict[str, list[np.ndarray]] = {s.name: [] for s in runner.output_specs}
    latencies = []
    for i in range(n):
        start = time.perf_counter()
        out = runner.infer({k: v[i : i + 1] for k, v in feeds.items()})
        latencies.append((time.perf_counter() - start) * 1000.0)
        for name, y in out.items():
            outputs[name].append(np.asarray(y))
    return {k: np.concatenate(v, axis=0) for k, v in outputs.items()}, latencies


def default_tolerance(output_specs: list[TensorSpec]) -> tuple[float, float]:
    """``(atol, rtol)``: 1e-3, widened to two quantization steps for quantized outputs (CPUs differ)."""
    steps = [2.0 * float(s.scale) for s in output_specs if s.quantized and s.scale]
    return max([1e-3, *steps]), 1e-3


def latency_budget(value: float | None) -> float | None:
    """A checked ``latency_budget_ms``: None, or a finite number above 0 and at most an hour.

    Raises:
        PackageError: Out of range, NaN or not a number.
    """
    if value is None:
        return None
    try:
        budget = float(value)
    except (TypeError, ValueError) as e:
        raise PackageError(f"latency_budget_ms must be a number, got {value!r}.") from e
    if not 0 < budget <= MAX_LATENCY_BUDGET_MS:
        raise PackageError(
            f"latency_budget_ms {value!r} is out of range: expected milliseconds above 0 and at most "
            f"{MAX_LATENCY_BUDGET_MS:g}.",
            hint="Give the median latency the device may take, e.g. 1.5 times `liteship bench`'s p50.",
        )
    return budget


def tolerance(
    value: float | Sequence[float] | Mapping[str, float] | None, specs: list[TensorSpec]
) -> tuple[float, float]:
    """Normalize ``golden_tolerance``: ``atol``, ``(atol, rtol)`` or ``{"atol":, "rtol":}``."""
    atol, rtol = default_tolerance(specs)
    if value is None:
        return atol, rtol
    if isinstance(value, Mapping):
        atol, rtol = float(value.get("atol", atol)), float(value.get("rtol", rtol))
    elif isinstance(value, (int, float)):
        atol = float(value)
    else:
        atol, rtol = (float(v) for v in value)
    if not (0 <= atol <= MAX_TOLERANCE and 0 <= rtol <= MAX_TOLERANCE):
        raise PackageError(
            f"golden tolerance atol={atol}, rtol={rtol}: each must be a finite number from 0 to "
            f"{MAX_TOLERANCE:g}.",
            hint="Give tolerances such as atol=1e-3, rtol=1e-3 (the defaults).",
        )
    return atol, rtol


def golden_npz(inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> bytes:
    """Reproducible ``golden.npz`` bytes (arrays in the given name order)."""
    members = {}
    for prefix, arrays in (("input", inputs), ("output", outputs)):
        for i, arr in enumerate(arrays.values()):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            members[f"{prefix}_{i}.npy"] = buf.getvalue()
    return write_archive(members)


def read_golden(
    data: bytes, golden: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, outputs)`` by name from ``golden.npz`` bytes and the manifest's ``golden`` entry."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            ins = {n: npz[f"input_{i}"] for i, n in enumerate(golden["inputs"])}
            outs = {n: npz[f"output_{i}"] for i, n in enumerate(golden["outputs"])}
    except (OSError, ValueError, KeyError) as e:
        raise PackageError(f"golden.npz does not match the manifest's golden entry ({e}).") from e
    return ins, outs


__all__ = [
    "golden_feeds",
    "check_finite",
    "run_golden",
    "tolerance",
    "default_tolerance",
    "golden_npz",
    "read_golden",
]
