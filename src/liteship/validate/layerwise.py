"""Per-layer quantization error with TensorFlow's QuantizationDebugger, worst first.

The debugger re-quantizes the TensorFlow source with NumericVerify ops after every quantized tensor,
so each tensor's float value is compared with its dequantized int8 value on the same input. The rank
key is ``sqrt(mean_squared_error) / scale`` — the error in quantization steps (TensorFlow's tutorial
calls it ``rmse/scale``; about 0.29 is the error of ideal rounding, so much larger values point at the
layers to keep in float). Names are the tensor names that ``liteship.convert(..., keep_float_layers=)``
takes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liteship._tf import import_tf
from liteship.errors import ValidationError
from liteship.model import inspect_model
from liteship.runtime.reference import KERAS_SUFFIXES, KerasRunner, SavedModelRunner
from liteship.validate.report import LayerStats

INTEGER_KINDS = ("full-int8", "mixed")


def tf_source_of(reference: Any, runner: Any, candidate_info: dict[str, Any]) -> Any:
    """The TensorFlow source to re-quantize: the reference when it is one, else the candidate's record.

    Raises:
        ValidationError: Neither is a Keras model or SavedModel that exists.
    """
    if isinstance(runner, KerasRunner):
        return runner.model
    if isinstance(runner, SavedModelRunner):
        return str(reference)
    recorded = candidate_info.get("source")
    if recorded:
        p = Path(recorded)
        if p.is_dir() or (p.is_file() and p.suffix.lower() in KERAS_SUFFIXES):
            return str(p)
    raise ValidationError(
        "layerwise statistics need the TensorFlow source the candidate was converted from, but the "
        f"reference is not one and the candidate records no usable source ({recorded or 'none'}).",
        hint="Pass the Keras model or SavedModel as the reference (or as layerwise_source).",
    )


def layerwise_stats(
    candidate: Any, source: Any, samples: Sequence[list[np.ndarray]], recipe: str | None = None
) -> list[LayerStats]:
    """Quantization error per tensor, worst first.

    Args:
        candidate: The integer-quantized .tflite (path or bytes); checked to be integer-quantized.
        source: Its TensorFlow source: a ``keras.Model``, a ``.keras``/``.h5`` path or a SavedModel dir.
        samples: Representative inputs: per sample, a list of float32 arrays with a batch of 1, in the
            model's input order.
        recipe: The candidate's recipe from its record; ``int8-fallback`` lets float ops stay.

    Raises:
        ValidationError: The candidate is not integer-quantized, or the debugger fails.
    """
    kind = inspect_model(candidate).kind
    if kind not in INTEGER_KINDS:
        raise ValidationError(
            f"layerwise statistics need an integer-quantized candidate; this one is {kind}.",
            hint="Use a model converted with quantize='int8' (or int8-fallback), or set layerwise=False.",
        )

    tf = import_tf()

    def dataset() -> Iterator[list[np.ndarray]]:
        yield from samples

    with contextlib.ExitStack() as stack:
        try:
            converter = _converter(tf, source, stack)
        except Exception as e:  # keras load/export errors come in many types
            raise ValidationError(
                f"cannot re-convert the layerwise source {getattr(source, 'name', source)!r}: {_first_line(e)}",
                hint="Pass a keras.Model, a .keras/.h5 file or a SavedModel directory as layerwise_source.",
            ) from e
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        if recipe != "int8-fallback":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        try:
            with _quiet(), warnings.catch_warnings():  # tf.lite.Interpreter warns it is deprecated
                warnings.simplefilter("ignore")
                debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=dataset
                )
                debugger.run()
                dump = io.StringIO()
                debugger.layer_statistics_dump(dump)
        except Exception as e:  # the converter and debugger raise ValueError/RuntimeError/ConverterError
            raise ValidationError(f"TensorFlow's QuantizationDebugger failed: {_first_line(e)}") from e
    return rank(csv.DictReader(io.StringIO(dump.getvalue())))


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else type(e).__name__


def rank(rows: Any) -> list[LayerStats]:
    """LayerStats from the debugger's CSV rows, worst ``rmse/scale`` first."""
    out = []
    for row in rows:
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        out.append(
            LayerStats(
                name=row["tensor_name"],
                op_name=row["op_name"],
                tensor_index=int(row["tensor_idx"]),
                rmse_over_scale=math.sqrt(mse) / scale if scale > 0 else math.inf,
                mean_squared_error=mse,
                max_abs_error=float(row["max_abs_error"]),
                mean_error=float(row["mean_error"]),
                range=255.0 * scale,
                scale=scale,
                zero_point=int(float(row["zero_point"])),
            )
        )
    return sorted(out, key=lambda s: (-s.rmse_over_scale, s.name))


def _converter(tf: Any, source: Any, stack: contextlib.ExitStack) -> Any:
    """A TFLiteConverter for the source. Keras models go through ``export()`` → SavedModel, the path
    that works on Keras 3 (``from_keras_model`` breaks there: tensorflow#63987)."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return tf.lite.TFLiteConverter.from_saved_model(str(source))
    model = source
    if isinstance(source, (str, Path)):
        import keras

        model = keras.models.load_model(source, compile=False)
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="liteship-layerwise-"))
    with _quiet():
        model.export(tmp, verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(tmp)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the terminal clean (and ``--json`` stdout JSON): the MLIR quantizer and the interpreter
    print to file descriptors 1 and 2 from C++. Errors still surface as exceptions."""
    if os.environ.get("LITESHIP_VERBOSE"):
        yield
        return
    saved: list[tuple[int, int]] = []
    try:
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            copy = os.dup(fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
            saved.append((fd, copy))
    except (OSError, ValueError):  # no real descriptors (an embedding host): Python-level only
        pass
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


__all__ = ["layerwise_stats", "tf_source_of", "rank"]
