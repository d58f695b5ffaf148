"""Affine (de)quantization exactly as TFLite's kernels do it.

``q = clamp(round_half_away_from_zero(x / scale) + zero_point)`` with the division in float32, as the
QUANTIZE kernel does, and ``x = scale * (q - zero_point)``.
"""

from __future__ import annotations

import math

import numpy as np

# Adding the largest float32 below 0.5 (with the value's sign), then truncating, rounds half away from
# zero in float32 without the double rounding that adding 0.5 causes (0.49999997 + 0.5 rounds to 1.0).
# The signed half is built from the sign bit: np.copysign is several times slower than two bit ops.
_HALF_DOWN_BITS = np.nextafter(np.float32(0.5), np.float32(0.0)).view(np.uint32)
_SIGN_BIT = np.uint32(0x80000000)
_INT16_SAFE = 30_000.0  # |x / (scale/2)| below this casts to int16 without overflow


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
    """:func:`quantize` for one tensor, fed again and again: the same bytes, in buffers allocated once
    per shape, in fewer passes over the data (issue 22, benchmarks/runner_overhead.py).

    For a float32 feed and an 8-bit dtype it computes, with ``s = x / scale`` (float32) and the zero
    point's bounds ``L = min - zp``, ``B = max - zp``::

        q = trunc(2·c) - trunc(c) + zp,   c = clip(s, L, B)

    ``trunc(2s) - trunc(s)`` *is* rounding half away from zero (``2s`` is exact in float32), and
    clipping before or after truncating gives the same because ``L`` and ``B`` are integers. ``2s`` is
    ``x / (scale / 2)`` (halving a float32 scale is exact); with ``a = trunc(2c)``, ``trunc(2c) -
    trunc(c)`` is ``ceil(a/2)``, or ``floor(a/2)`` for ``a < 0``: ``(a + 1 + (a >> 15)) >> 1``, the zero
    point joining before the last shift. The passes: the feed's minimum and maximum (which also find a
    NaN), one division cast straight to int16 (truncation), a clip on int16 when the extremes need it,
    and four int16 passes, the last writing the target (e.g. the interpreter's input tensor) — against
    eight float32 passes and a copy before. The clip is one-sided, or none, when the extremes' quotients
    say which bounds ``trunc(2s)`` can cross. Extremes beyond int16 divide and clip in float32 first.
    A feed with a NaN (whose cast is the platform's, not arithmetic), another dtype than float32, a
    16-bit dtype, a zero point outside the dtype or a scale whose half is not a normal float32 take
    :func:`quantize`'s own passes.

    Example:
        >>> Quantizer(0.5, 0, "int8")(np.array([0.25, -0.25, 1000.0], np.float32)).tolist()
        [1, -1, 127]
    """

    def __init__(self, scale: float, zero_point: int, dtype: np.dtype | type | str) -> None:
        self.dtype = np.dtype(dtype)
        info = np.iinfo(self.dtype)
        self.scale, self.zero_point = np.float32(scale), np.float32(zero_point)
        self.low, self.high = np.float32(info.min), np.float32(info.max)
        half = self.scale / np.float32(2.0)
        self._fast = (
            self.dtype.itemsize == 1
            and info.min <= int(zero_point) <= info.max
            and float(zero_point) == int(zero_point)
            and bool(np.isfinite(half))
            and abs(float(half)) >= float(np.finfo(np.float32).tiny)
        )
        self._half_scale = half
        self._bias = np.int16(1 + 2 * int(zero_point)) if self._fast else np.int16(0)
        self._lo2 = np.float32(2 * (info.min - int(zero_point))) if self._fast else np.float32(0)
        self._hi2 = np.float32(2 * (info.max - int(zero_point))) if self._fast else np.float32(0)
        self._lo2i, self._hi2i = np.int16(self._lo2), np.int16(self._hi2)
        self._below, self._above = float(self._lo2) - 1.0, float(self._hi2) + 1.0  # a quotient needing a clip
        self._shape: tuple[int, ...] | None = None

    def _buffers(self, shape: tuple[int, ...]) -> None:
        self._work = np.empty(shape, np.float32)
        self._half = np.empty(shape, np.uint32)
        self._twice = np.empty(shape, np.int16)
        self._once = np.empty(shape, np.int16)
        self._out = np.empty(shape, self.dtype)
        self._shape = shape

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The quantized ``x``, written into ``out`` when given (an array of ``x``'s shape and this
        quantizer's dtype, e.g. a view of the interpreter's input tensor: no copy afterwards), else
        into a buffer reused by the next call (copy it to keep it)."""
        if x.shape != self._shape:
            self._buffers(x.shape)
        if out is not None and (out.shape != x.shape or out.dtype != self.dtype):
            raise ValueError(
                f"out has shape {out.shape} and dtype {out.dtype}; expected {x.shape} {self.dtype}."
            )
        target = self._out if out is None else out
        s = self._work
        if self._fast and x.dtype == np.float32 and x.size:
            a, v = self._twice, self._once
            # the extremes, in Python floats (NaN if any is; no overflow warnings): every x / (scale/2)
            # within [2L, 2B] needs no clip, since float32 division is monotonic
            low, high = float(np.minimum.reduce(x, axis=None)), float(np.maximum.reduce(x, axis=None))
            h = self._half_scale
            lo2, hi2 = sorted((low / float(h), high / float(h)))
            if lo2 >= -_INT16_SAFE and hi2 <= _INT16_SAFE:
                np.divide(x, h, out=a, casting="unsafe")  # a = trunc(2s): one pass, no float buffer
                # trunc(clip(v)) = clip(trunc(v)) (integer bounds), so clip a only where trunc(2s) leaves
                # [2L, 2B]: the extremes' own float32 quotients are the quotients' extremes (correctly
                # rounded division is monotonic), and with 2L <= 0 <= 2B, trunc(y) < 2L iff y <= 2L - 1,
                # trunc(y) > 2B iff y >= 2B + 1. One bound is one np.maximum/np.minimum, not a np.clip.
                q_lo, q_hi = sorted((float(np.float32(low) / h), float(np.float32(high) / h)))
                if q_lo <= self._below:
                    np.maximum(a, self._lo2i, out=a)
                if q_hi >= self._above:
                    np.minimum(a, self._hi2i, out=a)
                usable = True
            else:
                np.divide(x, h, out=s)  # 2·x/scale, exactly
                np.clip(s, self._lo2, self._hi2, out=s)
                usable = not (math.isnan(low) or math.isnan(high))
                if usable:
                    np.copyto(a, s, casting="unsafe")  # a = trunc(2c), in [2L, 2B]
            if usable:
                np.right_shift(a, 15, out=v)  # -1 where a < 0, else 0
                v += a
                v += self._bias  # a + 1 + 2·zp (+ the -1)
                np.right_shift(v, 1, out=target, casting="unsafe")  # ceil(a/2) or floor(a/2) for a < 0, + zp
                return target
        half = self._half
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
        with np.errstate(invalid="ignore"):  # NaN: the platform's cast, as quantize() gives
            np.copyto(target, s, casting="unsafe")
        return target


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``scale * (q - zero_point)`` in float32.

    Example:
        >>> dequantize(np.array([-128, 0, 127], np.int8), 0.5, -128).tolist()
        [0.0, 64.0, 127.5]
    """
    return (np.asarray(q, dtype=np.int32) - int(zero_point)).astype(np.float32) * np.float32(scale)


__all__ = ["quantize", "dequantize", "Quantizer"]
