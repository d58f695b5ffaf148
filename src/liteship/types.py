"""Small shared types: tensor specs, preprocessing, report helpers. stdlib + numpy only."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.errors import DataError


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model.

    Attributes:
        name: Tensor name (or signature key when the model has signatures).
        shape: Static shape; ``-1`` marks a dynamic dimension.
        dtype: numpy dtype name, e.g. ``"float32"``, ``"int8"``.
        scale: Quantization scale (per-tensor) or ``None`` for float tensors.
        zero_point: Quantization zero point or ``None``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.scale != 0.0

    def describe(self) -> str:
        q = f" q(scale={self.scale:.6g}, zp={self.zero_point})" if self.quantized else ""
        return f"{self.name}: {self.dtype}{list(self.shape)}{q}"


def check_normalization(mean: Sequence[float] | None, std: Sequence[float] | None, what: str = "") -> None:
    """The one rule for a normalization ``(x - mean) / std``: finite numbers, every std above 0.

    Args:
        what: A prefix naming the parameters in the message (``"input_"`` gives input_mean/input_std).

    Raises:
        DataError: A value is NaN/Inf, a list is empty, or a std is 0 or negative.
    """
    for name, values in ((f"{what}mean", mean), (f"{what}std", std)):
        if values is None:
            continue
        values = [float(v) for v in values]
        if not values or not all(math.isfinite(v) for v in values):
            raise DataError(f"{name} {values} must be one or more finite numbers (no NaN or Inf).")
        if name.endswith("std") and any(v <= 0 for v in values):
            raise DataError(
                f"{name} {values} must be > 0: (x - mean) / std divides by it.",
                hint="E.g. a std of 255 scales pixels 0..255 to 0..1; a mean and std of 127.5 scale them to "
                "-1..1.",
            )


@dataclass(frozen=True)
class Preprocessing:
    """How raw inputs become model inputs, declared once and reused by every stage.

    The normalization follows TFLite Metadata's ``NormalizationOptions``: ``(x - mean) / std`` on raw
    values (pixels 0..255 for images), per channel or broadcast from one value. Images are resized to
    ``size`` (or the model's input size) and ordered ``channel_order``.

    Attributes:
        mean: Per-channel (or single) mean. Defaults to ``(0.0,)``.
        std: Per-channel (or single) standard deviation. Defaults to ``(1.0,)``.
        size: ``(height, width)`` to resize images to; ``None`` uses the model's input size.
        channel_order: ``"rgb"`` or ``"bgr"``. Defaults to ``"rgb"``.
        grayscale: Convert images to one channel. Defaults to ``None``: decided by the model input.
    """

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    size: tuple[int, int] | None = None
    channel_order: str = "rgb"
    grayscale: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in _as_seq(self.mean)))
        object.__setattr__(self, "std", tuple(float(s) for s in _as_seq(self.std)))
        if self.size is not None:
            object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        check_normalization(self.mean, self.std)
        if self.channel_order not in ("rgb", "bgr"):
            raise DataError(f"channel_order {self.channel_order!r} is not one of 'rgb', 'bgr'.")

    @property
    def is_identity(self) -> bool:
        return all(m == 0.0 for m in self.mean) and all(s == 1.0 for s in self.std)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Apply ``(x - mean) / std`` in float32, broadcasting over the last (channel) axis."""
        x = np.asarray(x, dtype=np.float32)
        if self.is_identity:
            return x
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return (x - mean) / std

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Preprocessing:
        if not d:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DataError(
                f"unknown preprocessing keys {sorted(unknown)}; expected some of {sorted(known)}."
            )
        return cls(**d)


def _as_seq(v: float | Sequence[float]) -> Sequence[float]:
    if isinstance(v, (int, float, np.floating, np.integer)):
        return (float(v),)
    return v


def to_jsonable(obj: Any) -> Any:
    """Turn dataclasses, numpy values, paths and enums into JSON-ready structures (NaN → None)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


@dataclass(frozen=True)
class ReportMixin:
    """Base for frozen report dataclasses: ``to_dict()`` gives a JSON-ready dict."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


__all__ = ["TensorSpec", "Preprocessing", "ReportMixin", "to_jsonable", "field"]
