"""Affine (de)quantization exactly as TFLite does it: q = round_half_away(x / scale) + zero_point."""

from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype | type | str) -> np.ndarray:
    """Quantize floats to ``dtype`` (int8/uint8/int16), rounding half away from zero, clipping to range."""
    dt = np.dtype(dtype)
    info = np.iinfo(dt)
    scaled = np.asarray(x, dtype=np.float64) / float(scale)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)  # half away from zero, like std::round
    return np.clip(rounded + int(zero_point), info.min, info.max).astype(dt)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``(q - zero_point) * scale`` in float32."""
    return ((np.asarray(q, dtype=np.int32) - int(zero_point)) * np.float32(scale)).astype(np.float32)


__all__ = ["quantize", "dequantize"]
