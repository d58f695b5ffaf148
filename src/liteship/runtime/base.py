"""The Runner protocol: one interface for every backend (after NVIDIA Polygraphy's runners).

The base class checks a feed once — names, ranks, shapes, dtypes — so each backend stays small.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from liteship.errors import InferenceError
from liteship.types import TensorSpec

Feed = Mapping[str, np.ndarray] | np.ndarray | Sequence[np.ndarray]
_R = TypeVar("_R", bound="Runner")  # __enter__ returns the concrete runner


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

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- feed checking ------------------------------------------------------------------------------------
    def _expected(self) -> str:
        return "; ".join(s.describe() for s in self.input_specs)

    def accepts_dtype(self, spec: TensorSpec, dtype: np.dtype) -> bool:
        """Whether a feed of ``dtype`` can go to input ``spec``. Backends widen this (e.g. floats for a
        quantized input). Defaults to: the same dtype, or one numpy casts to it within its kind."""
        want = np.dtype(spec.dtype)
        if dtype == want:
            return True
        if want.kind == "f":
            return dtype.kind in "fiub"
        if want.kind in "iu":
            return dtype.kind in "iub" and np.can_cast(dtype, want, "same_kind")
        return dtype.kind == want.kind or (want.kind in "SUO" and dtype.kind in "SUO")

    def check_feed(self, feed: Feed) -> dict[str, np.ndarray]:
        """Match ``feed`` to :attr:`input_specs`: names, ranks, fixed dimensions and dtypes.

        An array one rank short of its input gets a batch dimension of 1; the batch dimension itself may
        vary (the backend resizes or loops).

        Returns:
            ``{input_name: array}`` in input order.

        Raises:
            InferenceError: What does not match, with every expected input listed.
        """
        specs = self.input_specs
        if isinstance(feed, Mapping):
            if len(feed) != len(specs) or any(s.name not in feed for s in specs):
                self._raise_names(feed)
        elif isinstance(feed, np.ndarray) or np.isscalar(feed):
            if len(specs) != 1:
                raise InferenceError(
                    f"got one array for a model with {len(specs)} inputs.",
                    hint=f"Pass a dict {{name: array}}; expected inputs: {self._expected()}.",
                )
            feed = {specs[0].name: np.asarray(feed)}
        elif isinstance(feed, (list, tuple)):
            if len(feed) != len(specs):
                raise InferenceError(
                    f"got {len(feed)} arrays for a model with {len(specs)} inputs.",
                    hint=f"Pass them in input order, or as a dict; expected inputs: {self._expected()}.",
                )
            feed = {s.name: a for s, a in zip(specs, feed, strict=True)}
        else:
            raise InferenceError(
                f"a feed must be a dict, an array or a list of arrays, not {type(feed).__name__}.",
                hint=f"Expected inputs: {self._expected()}.",
            )
        out: dict[str, np.ndarray] = {}
        for spec in specs:
            arr = feed[spec.name]
            if not isinstance(arr, np.ndarray):
                arr = np.asarray(arr)
            rank = len(spec.shape)
            if arr.ndim == rank - 1:
                arr = arr[None]
            if arr.ndim != rank or any(
                w >= 0 and g != w for g, w in zip(arr.shape[1:], spec.shape[1:], strict=True)
            ):
                raise InferenceError(
                    f"input {spec.name!r} has shape {list(arr.shape)}; expected {list(spec.shape)} "
                    f"(-1 is any size; the batch dimension may vary; one rank less adds a batch of 1).",
                    hint=f"Expected inputs: {self._expected()}.",
                )
            if arr.size == 0:  # LiteRT aborts the process on an empty batch (malloc_consolidate)
                raise InferenceError(
                    f"input {spec.name!r} has shape {list(arr.shape)}: no elements (an empty batch); "
                    f"expected at least one sample of shape {list(spec.shape[1:])}.",
                    hint="Check the input file: it holds no samples.",
                )
            if not self.accepts_dtype(spec, arr.dtype):
                raise InferenceError(
                    f"input {spec.name!r} has dtype {arr.dtype}; expected {spec.dtype}.",
                    hint=f"Cast the array (e.g. x.astype(np.{spec.dtype})). Expected inputs: {self._expected()}.",
                )
            out[spec.name] = arr
        return out

    def _raise_names(self, feed: Mapping[str, Any]) -> None:
        import difflib

        names = [s.name for s in self.input_specs]
        unknown = [str(k) for k in feed if k not in names]
        missing = [n for n in names if n not in feed]
        guesses = [f"{u!r} → {m[0]!r}?" for u in unknown if (m := difflib.get_close_matches(u, missing, 1))]
        raise InferenceError(
            f"feed names do not match the model's inputs (unknown: {unknown or 'none'}; "
            f"missing: {missing or 'none'})." + (f" Did you mean {', '.join(guesses)}" if guesses else ""),
            hint=f"Expected inputs: {self._expected()}.",
        )


class FixedSpecsRunner(Runner):
    """A runner whose specs are worked out once, in ``__init__`` (set ``_input_specs`` and
    ``_output_specs``): the reference runners, the Interpreter runner, recorded outputs."""

    _input_specs: list[TensorSpec]
    _output_specs: list[TensorSpec]

    @property
    def input_specs(self) -> list[TensorSpec]:
        return self._input_specs

    @property
    def output_specs(self) -> list[TensorSpec]:
        return self._output_specs


class WrappingRunner(Runner):
    """A runner around another one (``inner``): same specs; closing it closes ``inner``. Subclasses
    change what ``_infer`` does with the feed or the outputs (caching, rounding inputs)."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner

    @property
    def input_specs(self) -> list[TensorSpec]:
        return self.inner.input_specs

    @property
    def output_specs(self) -> list[TensorSpec]:
        return self.inner.output_specs

    def close(self) -> None:
        self.inner.close()


__all__ = ["Runner", "FixedSpecsRunner", "WrappingRunner", "Feed"]
