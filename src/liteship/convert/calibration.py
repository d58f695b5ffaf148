"""Calibration: a liteship Dataset → TFLite's representative dataset, plus the input range it covered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteship.data import Dataset, load_dataset
from liteship.errors import DataError
from liteship.progress import track
from liteship.types import Preprocessing


@dataclass(frozen=True)
class Calibration:
    """Samples ready for the converter.

    Attributes:
        source: Where they came from (for reports).
        samples: Model-ready inputs with the batch dimension: one list of arrays per sample, or a
            ``{input name: array}`` dict for multi-input models.
        input_names: The names the samples are keyed by (model input names).
    """

    source: str
    samples: list[Any]
    input_names: list[str]

    def __len__(self) -> int:
        return len(self.samples)

    def representative_dataset(self, *, progress: bool = True) -> Callable[[], Iterator[Any]]:
        """A factory for ``converter.representative_dataset`` that draws a progress bar."""

        def generate() -> Iterator[Any]:
            yield from track(
                self.samples, total=len(self.samples), description="calibrating", enabled=progress
            )

        return generate

    def input_range(self) -> dict[str, dict[str, float]]:
        """``{input name: {"min": …, "max": …}}`` over every sample, for drift checks on the device."""
        out: dict[str, dict[str, float]] = {}
        for i, name in enumerate(self.input_names):
            values = [s[name] if isinstance(s, dict) else s[i] for s in self.samples]
            out[name] = {
                "min": float(min(np.min(v) for v in values)),
                "max": float(max(np.max(v) for v in values)),
            }
        return out


def load_calibration(
    calibration: Any,
    *,
    input_shapes: dict[str, tuple[int, ...]],
    samples: int,
    preprocessing: Preprocessing,
) -> Calibration:
    """Read up to ``samples`` calibration inputs and batch them for the model's inputs.

    Args:
        calibration: Image folder, ``.npy``/``.npz`` path, array, callable or Dataset.
        input_shapes: ``{name: shape}`` of the model's inputs (batch dimension included).
        samples: How many samples to use at most.
        preprocessing: Applied to every sample by :func:`liteship.data.load_dataset`.

    Raises:
        DataError: The data cannot be read, or its samples do not fit the model's input.
    """
    if samples < 1:
        raise DataError(f"`calibration_samples` must be at least 1, got {samples}.")
    names = list(input_shapes) or ["input"]
    first_shape = next(iter(input_shapes.values()), None)
    dataset: Dataset = load_dataset(
        calibration, preprocessing=preprocessing, input_shape=first_shape, limit=samples
    )
    batched = [_batch(x, names, input_shapes, dataset.source, i) for i, (x, _) in enumerate(dataset)]
    return Calibration(dataset.source, batched, names)


def _batch(
    x: Any, names: list[str], shapes: dict[str, tuple[int, ...]], source: str, index: int
) -> list[np.ndarray] | dict[str, np.ndarray]:
    if isinstance(x, dict):
        missing = sorted(set(names) - set(x))
        if missing:
            raise DataError(
                f"calibration sample {index} from {source!r} has inputs {sorted(x)}; the model also "
                f"needs {missing}."
            )
        return {n: _with_batch(x[n], shapes.get(n), source, index) for n in names}
    if len(names) > 1:
        raise DataError(
            f"the model has {len(names)} inputs ({', '.join(names)}) but calibration data from "
            f"{source!r} gives one array per sample.",
            hint="Pass a callable yielding {input_name: array} dicts.",
        )
    return [_with_batch(x, shapes.get(names[0]), source, index)]


def _with_batch(x: Any, shape: tuple[int, ...] | None, source: str, index: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if shape is None:
        return arr[None]
    if arr.ndim == len(shape) - 1:
        arr = arr[None]
    fits = arr.ndim == len(shape) and all(
        want in (-1, got) for want, got in zip(shape[1:], arr.shape[1:], strict=True)
    )
    if not fits:
        raise DataError(
            f"calibration sample {index} from {source!r} has shape {list(arr.shape)}; the model input "
            f"expects {['?' if d == -1 else d for d in shape]} (batch first).",
            hint="Give samples shaped like the model input, or set preprocessing size for images.",
        )
    return arr


__all__ = ["Calibration", "load_calibration"]
