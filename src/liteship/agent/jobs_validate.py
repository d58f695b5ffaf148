"""Validation jobs on the device: run a variant over the job's signed samples, send the outputs back.

The samples (``x`` of the job's data target, fetched and verified through TUF like the variants) were
preprocessed on the workstation; the device feeds them one at a time, *between frames* of the live
model (the :class:`~liteship.agent.pacing.Pacer` of bench jobs), to the runner it uses in production
(:func:`liteship.runtime.factory.device_runner`: the agent's ``--accelerator``, falling back to the
CPU as the live loop does). The outputs of one variant go to the server in one bounded request; the
server computes the figures of ``liteship validate`` (:mod:`liteship.fleet.jobs_validate`).

Test hook (never set it in production): ``LITESHIP_TEST_OUTPUT_NOISE="0.5"`` adds Gaussian noise of
that standard deviation, times each output's own standard deviation, to the float outputs a device
sends back — a device whose runtime computes wrong numbers; ``"int8.tflite=3.0,…"`` perturbs only the
variants named (a device whose int8 kernels are wrong).
"""

from __future__ import annotations

import base64
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from liteship.agent.pacing import JobStopped, Pacer
from liteship.errors import JobRefused, LiteshipError

MAX_SAMPLES = 1000  # as the server's (liteship.fleet.jobs_models); a device does not trust the server's
MAX_DATA_BYTES = 64 << 20
MAX_OUTPUT_BYTES = 640 << 10
SENT_DTYPES = ("float32", "int8", "uint8", "int16", "int32")
NOISE_ENV = "LITESHIP_TEST_OUTPUT_NOISE"


def load_samples(path: Path) -> np.ndarray:
    """The job's samples: ``x`` of a ``.npz`` (no pickles), numbers, finite, 1…MAX_SAMPLES rows.

    Raises:
        JobRefused: Anything else (the whole job is refused: its data are unusable).
    """
    if path.stat().st_size > MAX_DATA_BYTES:
        raise JobRefused(f"the validation data is over {MAX_DATA_BYTES >> 20} MiB.")
    try:
        with np.load(path, allow_pickle=False) as files:
            if "x" not in files.files:
                raise JobRefused(f"the validation data has no array 'x' (it has {files.files[:10]}).")
            x = files["x"]
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise JobRefused(f"the validation data is not a readable .npz ({e}).") from e
    if x.dtype.kind not in "fiu" or x.ndim < 2 or not 1 <= len(x) <= MAX_SAMPLES:
        raise JobRefused(
            f"the validation data's x is {x.dtype} {list(x.shape)}; expected 1…{MAX_SAMPLES} numeric samples."
        )
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise JobRefused("the validation data holds NaN or Inf.")
    return x


def _noise_level(name: str) -> float | None:
    """Tests only: the noise ``LITESHIP_TEST_OUTPUT_NOISE`` asks for variant ``name`` (``LEVEL`` for every
    variant, or ``NAME=LEVEL,…``), None for none."""
    spec = os.environ.get(NOISE_ENV)
    if not spec:
        return None
    if "=" not in spec:
        return float(spec)
    levels = dict(pair.split("=", 1) for pair in spec.split(",") if "=" in pair)
    return float(levels[name]) if name in levels else None


def _noise(outputs: dict[str, np.ndarray], name: str = "") -> dict[str, np.ndarray]:
    """Tests only: the outputs with noise added (``LITESHIP_TEST_OUTPUT_NOISE``)."""
    level = _noise_level(name)
    if level is None:
        return outputs
    print(f"liteship test hook: output noise {level:g}·std added to validation outputs", file=sys.stderr)
    rng = np.random.default_rng(0)
    out = {}
    for k, v in outputs.items():
        if v.dtype.kind == "f":
            v = (v + rng.normal(0.0, level * float(np.std(v)) + 1e-6, v.shape)).astype(v.dtype)
        out[k] = v
    return out


def run_validation(
    name: str,
    path: Path,
    x: np.ndarray,
    *,
    pacer: Pacer,
    accelerator: str | None,
    num_threads: int | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Run one variant over ``x``, one sample per step between frames.

    Returns:
        ``(result row for the final report, outputs body for the server or None on error)``.
    """
    from liteship.runtime.factory import device_runner

    try:
        t0 = time.perf_counter()
        with pacer:  # one step: the load
            runner, fallback = device_runner(str(path), accelerator=accelerator, num_threads=num_threads)
            load_ms = (time.perf_counter() - t0) * 1000.0
        try:
            specs = runner.input_specs
            if len(specs) != 1:
                raise LiteshipError(f"{name} has {len(specs)} inputs; validation jobs take one-input models.")
            rows: dict[str, list[np.ndarray]] = {}
            with pacer:
                for i in range(len(x)):
                    t = time.perf_counter()
                    out = runner.infer({specs[0].name: x[i][None]})
                    pacer((time.perf_counter() - t) * 1000.0)
                    for k, v in out.items():
                        rows.setdefault(k, []).append(np.asarray(v))
            accel = str(getattr(runner, "accelerator", "cpu"))
            backend = str(runner.backend)
        finally:
            runner.close()
    except JobStopped:
        raise
    except LiteshipError as e:
        return {"name": name, "ok": False, "error": str(e)[:1000]}, None
    except Exception as e:  # noqa: BLE001 - a bad variant must never stop the agent
        return {"name": name, "ok": False, "error": f"{type(e).__name__}: {e}"[:1000]}, None
    outputs = _noise({k: np.concatenate(v) for k, v in rows.items()}, name)
    size = sum(v.nbytes for v in outputs.values())
    bad = [k for k, v in outputs.items() if str(v.dtype) not in SENT_DTYPES]
    row: dict[str, Any] = {
        "name": name,
        "ok": True,
        "samples": len(x),
        "accelerator": accel[:200],
        "fallback": fallback[:1000] if fallback else None,
        "load_ms": load_ms,
    }
    if bad or size > MAX_OUTPUT_BYTES:
        why = f"output dtypes {bad}" if bad else f"{size} bytes of outputs, over {MAX_OUTPUT_BYTES}"
        return {**row, "ok": False, "error": f"cannot send back {why}."}, None
    body = {
        "name": name,
        "samples": len(x),
        "accelerator": accel[:200],
        "backend": backend[:200],
        "fallback": fallback[:1000] if fallback else None,
        "outputs": [
            {
                "name": k[:200],
                "shape": list(v.shape),
                "dtype": str(v.dtype),
                "data": base64.b64encode(np.ascontiguousarray(v).tobytes()).decode(),
            }
            for k, v in outputs.items()
        ],
    }
    return row, body


__all__ = ["load_samples", "run_validation", "NOISE_ENV", "MAX_SAMPLES"]
