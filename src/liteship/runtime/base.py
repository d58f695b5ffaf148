"""The Runner protocol: one interface for every backend (after NVIDIA Polygraphy's runners).

The base class checks a feed once — names, ranks, shapes, dtypes — so each backend stays small.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from liteship.errors import InferenceError
from liteship.types import TensorSpec

Feed = Mapping[str, np.ndarray] | np.ndarray | Sequence[np.ndarray]


class Runner(abc.ABC):
    """Run a model: ``infer({name: array}) -> {name: array}``.

    A feed may also be a single array (one-input models) or a list in input order. An array whose rank
    is one less than the input's gets a batch dimension of 1. Runners are context managers; ``close()``
    releases the backend.

    Attributes:
        backend: Which implementation runs, e.g. ``"ai-edge-litert 2.3.0"`` or ``"keras"``.
        name: A short label for reports (file name or model name).
    """

    backend: str = "unknown"
    name: str = "model"

    @property
    @abc.abstractmethod
    def input_specs(self) -> list[TensorSpec]: ...

    @property
    @abc.abstractmethod
    def output_specs(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        """Run one feed.

        Args:
            feed: ``{input_name: array}``, one array, or a list of arrays in input order.

        Returns:
            ``{output_name: array}`` in the order of :attr:`output_specs`.

        Raises:
            InferenceError: The feed does not match the model's inputs (the message lists them).
        """
        return self._infer(self.check_feed(feed))

    __call__ = infer

    def close(self) -> None:
        """Release the backend. Safe to call twice."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- feed checking ------------------------------------------------------------------------------------
    def _expected(self) -> str:
        return "; ".join(s.describe() for s in self.input_specs)

    def check_feed(self, feed: Feed) -> dict[str, np.ndarray]:
        specs = self.input_specs
        if isinstance(feed, np.ndarray) or np.isscalar(feed):
            if len(specs) != 1:
                raise InferenceError(
                    f"got one array for a model with {len(specs)} inputs.",
                    hint=f"Pass a dict {{name: array}}; inputs: {self._expected()}.",
                )
            feed = {specs[0].name: np.asarray(feed)}
        elif isinstance(feed, (list, tuple)):
            if len(feed) != len(specs):
                raise InferenceError(
                    f"got {len(feed)} arrays for a model with {len(specs)} inputs.",
                    hint=f"Inputs: {self._expected()}.",
                )
            feed = {s.name: np.asarray(a) for s, a in zip(specs, feed, strict=True)}
        elif not isinstance(feed, Mapping):
            raise InferenceError(
                f"a feed must be a dict, an array or a list of arrays, not {type(feed).__name__}."
            )
        names = {s.name for s in specs}
        unknown = sorted(set(feed) - names)
        missing = sorted(names - set(feed))
        if unknown or missing:
            raise InferenceError(
                f"feed names do not match the model's inputs (unknown: {unknown or 'none'}; "
                f"missing: {missing or 'none'}).",
                hint=f"Expected inputs: {self._expected()}.",
            )
        out: dict[str, np.ndarray] = {}
        for spec in specs:
            arr = np.asarray(feed[spec.name])
            if arr.ndim == len(spec.shape) - 1:
                arr = arr[None]
            if arr.ndim != len(spec.shape):
                raise InferenceError(
                    f"input {spec.name!r} has shape {list(arr.shape)}; expected rank "
                    f"{len(spec.shape)} like {list(spec.shape)}.",
                    hint=f"Expected inputs: {self._expected()}.",
                )
            for got, want in zip(arr.shape[1:], spec.shape[1:], strict=True):
                if want not in (-1, None) and got != want:
                    raise InferenceError(
                        f"input {spec.name!r} has shape {list(arr.shape)}; expected "
                        f"{list(spec.shape)} (batch may vary).",
                        hint=f"Expected inputs: {self._expected()}.",
                    )
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_ or arr.dtype.kind in "SUO"):
                raise InferenceError(f"input {spec.name!r} has dtype {arr.dtype}; expected {spec.dtype}.")
            out[spec.name] = arr
        return out


__all__ = ["Runner", "Feed"]
