"""LiteRTRunner: .tflite models on the LiteRT interpreter (ai-edge-litert), never TensorFlow by default."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from liteship.errors import InferenceError, ModelError
from liteship.model.flatbuffer import load_model
from liteship.runtime.base import Runner
from liteship.runtime.quant import dequantize, quantize
from liteship.types import TensorSpec


def interpreter_class() -> tuple[Any, str]:
    """``(Interpreter class, backend description)``: ai-edge-litert, else tflite-runtime, else tf.lite."""
    try:
        from ai_edge_litert import interpreter as mod

        return mod.Interpreter, f"ai-edge-litert {_version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as mod  # type: ignore[no-redef]

        return mod.Interpreter, f"tflite-runtime {_version('tflite-runtime')}"
    except ImportError:
        pass
    try:
        import tensorflow as tf  # noqa: F401  (last resort on a workstation)
    except ImportError:
        raise InferenceError(
            "no TFLite interpreter is installed (tried ai-edge-litert, tflite-runtime, tensorflow).",
            hint="pip install ai-edge-litert",
        ) from None
    warnings.warn(
        "ai-edge-litert is not installed; falling back to tf.lite.Interpreter, which is "
        "deprecated. pip install ai-edge-litert",
        DeprecationWarning,
        stacklevel=3,
    )
    return tf.lite.Interpreter, f"tf.lite {tf.__version__} (deprecated)"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _spec(detail: dict[str, Any]) -> TensorSpec:
    shape = detail.get("shape_signature")
    if shape is None or len(shape) == 0:
        shape = detail["shape"]
    scale, zp = detail.get("quantization", (0.0, 0))
    quantized = scale not in (0, 0.0) and np.dtype(detail["dtype"]).kind in "iu"
    return TensorSpec(
        name=detail["name"],
        shape=tuple(int(s) for s in shape),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale) if quantized else None,
        zero_point=int(zp) if quantized else None,
    )


class LiteRTRunner(Runner):
    """Run a .tflite with LiteRT.

    Float feeds to integer-quantized inputs are quantized with the model's own scale/zero-point
    (round half away from zero, clipped to the dtype), integer outputs are dequantized; ``raw=True``
    passes arrays through untouched.

    Args:
        model: Path to a .tflite file, or its bytes. Verified before the interpreter sees it.
        num_threads: CPU threads. Defaults to the number of cores.
        raw: Feed and return the model's own dtypes. Defaults to ``False``.

    Example:
        >>> with LiteRTRunner("model.tflite") as r:          # doctest: +SKIP
        ...     probs = r.infer(x)["probs"]
    """

    def __init__(
        self, model: str | Path | bytes, *, num_threads: int | None = None, raw: bool = False
    ) -> None:
        loaded = load_model(model)
        self.path = loaded.path
        self.name = Path(loaded.path).name if loaded.path else "model.tflite"
        self.model_bytes = loaded.data
        self.raw = raw
        self.num_threads = num_threads or os.cpu_count() or 1
        cls, self.backend = interpreter_class()
        try:
            self._interp = cls(model_content=self.model_bytes, num_threads=self.num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(
                f"LiteRT cannot load {self.name}: {_first_line(e)}", hint=_load_hint(str(e))
            ) from e
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self._input_specs = [_spec(d) for d in self._in]
        self._output_specs = [_spec(d) for d in self._out]
        self._current_shapes = {d["name"]: tuple(d["shape"]) for d in self._in}

    @property
    def input_specs(self) -> list[TensorSpec]:
        return self._input_specs

    @property
    def output_specs(self) -> list[TensorSpec]:
        return self._output_specs

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        resized = False
        for d, spec in zip(self._in, self._input_specs, strict=True):
            shape = tuple(feed[spec.name].shape)
            if shape != self._current_shapes[spec.name]:
                try:
                    self._interp.resize_tensor_input(d["index"], list(shape), strict=False)
                except (ValueError, RuntimeError) as e:
                    raise InferenceError(
                        f"cannot resize input {spec.name!r} to {list(shape)}: {_first_line(e)}",
                        hint=f"Expected: {spec.describe()}.",
                    ) from e
                self._current_shapes[spec.name] = shape
                resized = True
        if resized:
            try:
                self._interp.allocate_tensors()
            except (ValueError, RuntimeError) as e:
                raise InferenceError(
                    f"the model does not accept these input shapes: {_first_line(e)}",
                    hint=f"Expected inputs: {self._expected()}.",
                ) from e
        for d, spec in zip(self._in, self._input_specs, strict=True):
            self._interp.set_tensor(d["index"], self._to_model(feed[spec.name], spec))
        try:
            self._interp.invoke()
        except (ValueError, RuntimeError) as e:
            raise InferenceError(f"LiteRT failed to run {self.name}: {_first_line(e)}") from e
        out = {}
        for d, spec in zip(self._out, self._output_specs, strict=True):
            y = self._interp.get_tensor(d["index"])
            out[spec.name] = (
                y if self.raw or not spec.quantized else dequantize(y, spec.scale, spec.zero_point)
            )
        return out

    def _to_model(self, arr: np.ndarray, spec: TensorSpec) -> np.ndarray:
        want = np.dtype(spec.dtype)
        if arr.dtype == want:
            return arr
        if spec.quantized and not self.raw and np.issubdtype(arr.dtype, np.floating):
            return quantize(arr, spec.scale, spec.zero_point, want)
        if self.raw and spec.quantized and np.issubdtype(arr.dtype, np.floating):
            raise InferenceError(
                f"input {spec.name!r} is {spec.dtype} and raw=True, but the feed is {arr.dtype}.",
                hint="Quantize the feed yourself or use raw=False.",
            )
        return arr.astype(want)

    def close(self) -> None:
        self._interp = None  # type: ignore[assignment]


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _load_hint(text: str) -> str:
    if "Flex" in text or "Select TensorFlow" in text or "Regular TensorFlow ops" in text:
        return (
            "The model needs Select TensorFlow (Flex) ops, which the LiteRT builtin runtime cannot run. "
            "Re-convert without allow_select_tf_ops to see which layer produces them, or replace the layer."
        )
    if "custom" in text.lower():
        return "The model needs a custom op; register its kernel, or re-convert without custom ops."
    return "Check the model with `liteship inspect`."


__all__ = ["LiteRTRunner", "interpreter_class"]
