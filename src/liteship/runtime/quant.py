"""Affine (de)quantization exactly as TFLite's kernels do it.

``q = clamp(round_half_away_from_zero(x / scale) + zero_point)`` with the division in float32, as the
QUANTIZE kernel does, and ``x = scale * (q - zero_point)``.
"""

from __future__ import annotations

import numpy as np

# Adding the largest float32 below 0.5 (with the value's sign), then truncating, rounds half away from
# zero in float32 without the double rounding that adding 0.5 causes (0.49999997 + 0.5 rounds to 1.0).
# The signed half is built from the sign bit: np.copysign is several times slower than two bit ops.
_HALF_DOWN_BITS = np.nextafter(np.float32(0.5), np.float32(0.0)).view(np.uint32)
_SIGN_BIT = np.uint32(0x80000000)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype | type | str) -> np.ndarray:
    """Quantize floats to an integer ``dtype``, rounding half away from zero and clipping to its range.

    Args:
        x: Float values (anything ``np.asarray`` accepts).
        scale: The tensor's quantization scale (non-zero).
        zero_point: The tensor's zero point.
        dtype: Target integer dtype, e.g. ``np.int8``, ``"uint8"``, ``np.int16``.

    Returns:
        An array of ``dtype`` with the shape of ``x``.

    Example:
        >>> quantize([0.25, -0.25, 1000.0], 0.5, 0, "int8").tolist()
        [1, -1, 127]
    """
    dt = np.dtype(dtype)
    info = np.iinfo(dt)
    xf = np.asarray(x, dtype=np.float32)
    s = np.divide(xf, np.float32(scale), out=np.empty(xf.shape, np.float32))  # ours: safe to work in place
    half = np.bitwise_and(s.view(np.uint32), _SIGN_BIT)
    half |= _HALF_DOWN_BITS
    s += half.view(np.float32)
    np.trunc(s, out=s)
    s += np.float32(zero_point)
    np.clip(s, info.min, info.max, out=s)
    return s.astype(dt)


class Quantizer:
    """:func:`quantize` for one tensor, fed again and again: the same arithmetic (so the same bytes),
    in place in buffers allocated once per shape, with the zero point folded into the clip bounds.

    Allocating three fresh 600 kB arrays per frame (a 224×224×3 input) costs page faults on every
    call; :meth:`__call__` allocates nothing once warm (issue 22, benchmarks/runner_overhead.py).

    Example:
        >>> Quantizer(0.5, 0, "int8")(np.array([0.25, -0.25, 1000.0], np.float32)).tolist()
        [1, -1, 127]
    """

    def __init__(self, scale: float, zero_point: int, dtype: np.dtype | type | str) -> None:
        self.dtype = np.dtype(dtype)
        info = np.iinfo(self.dtype)
        self.scale, self.zero_point = np.float32(scale), np.float32(zero_point)
        self.low, self.high = np.float32(info.min), np.float32(info.max)
        self._shape: tuple[int, ...] | None = None

    def _buffers(self, shape: tuple[int, ...]) -> None:
        self._work = np.empty(shape, np.float32)
        self._half = np.empty(shape, np.uint32)
        self._out = np.empty(shape, self.dtype)
        self._shape = shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The quantized ``x``; the returned array is reused by the next call (copy it to keep it)."""
        if x.shape != self._shape:
            self._buffers(x.shape)
        s, half = self._work, self._half
        if x.dtype == np.float32:
            np.divide(x, self.scale, out=s)
        else:  # as quantize(): to float32 first, then the division in float32
            np.copyto(s, x, casting="unsafe")
            np.divide(s, self.scale, out=s)
        np.bitwise_and(s.view(np.uint32), _SIGN_BIT, out=half)
        np.bitwise_or(half, _HALF_DOWN_BITS, out=half)
        s += half.view(np.float32)
        np.trunc(s, out=s)
        s += self.zero_point
        np.clip(s, self.low, self.high, out=s)
        np.copyto(self._out, s, casting="unsafe")
        return self._out


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``scale * (q - zero_point)`` in float32.

    Example:
        >>> dequantize(np.array([-128, 0, 127], np.int8), 0.5, -128).tolist()
        [0.0, 64.0, 127.5]
    """
    return (np.asarray(q, dtype=np.int32) - int(zero_point)).astype(np.float32) * np.float32(scale)


__all__ = ["quantize", "dequantize", "Quantizer"]
