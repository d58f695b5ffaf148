"""Calibrate once, quantize many times: TFLite's MLIR quantizer with a denylist of float ops.

``tf.lite.experimental.QuantizationDebugger`` does the same two steps (a calibrate-only conversion, then
``mlir_quantize`` with ``denylisted_nodes``/``denylisted_ops``); calling them directly lets every
"keep these ops float" model reuse one calibration (~20 ms per model on the digits CNN instead of a
conversion) and keep int8/uint8/int16 model I/O: the quantizer puts the QUANTIZE/DEQUANTIZE pair at the
model boundary itself. :func:`check_io` makes sure it did. The MLIR quantizer has no 16-bit activation
mode (TFLite quantizes ``int16x8`` with its older calibrator, which has no denylist), so ``int16x8``
cannot keep ops in float.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from liteship._quiet import native_stderr_silenced
from liteship.errors import ConversionError

NUMPY_IO = {"float32": "float32", "int8": "int8", "uint8": "uint8", "int16": "int16"}


def calibrate(converter: Any) -> bytes:
    """Run a configured converter in calibrate-only mode: a float model carrying the ranges."""
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # what QuantizationDebugger sets, too
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": not yet, indeed
        warnings.simplefilter("ignore", UserWarning)
        return bytes(converter.convert())


def quantize_calibrated(
    calibrated: bytes,
    *,
    io_type: str = "float32",
    disable_per_channel: bool = False,
    keep_float_ops: Sequence[str] = (),
    keep_float_nodes: Sequence[str] = (),
) -> bytes:
    """Quantize a calibrated model, keeping the named op types and op output names in float.

    Args:
        calibrated: From :func:`calibrate`.
        io_type: Model input/output type. Defaults to ``float32``.
        disable_per_channel: Per-tensor weight scales.
        keep_float_ops: Builtin op type names (``"MEAN"``) to keep in float.
        keep_float_nodes: Op output tensor names to keep in float.

    Raises:
        ConversionError: The quantizer failed, or did not produce the requested I/O type.
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert  # QuantizationDebugger's entry point

    from liteship.convert.sources import quiet_stdout

    dtype = getattr(tf, io_type)
    try:
        # "Statistics for quantized inputs were expected" (a UserWarning: the ranges are in the model) and
        # "fully_quantize: …" (C++ on fd 1) are noise here
        with warnings.catch_warnings(), quiet_stdout(), native_stderr_silenced():
            warnings.simplefilter("ignore", UserWarning)
            out = tf_convert.mlir_quantize(
                calibrated,
                disable_per_channel=disable_per_channel,
                input_data_type=dtype,
                output_data_type=dtype,
                denylisted_ops=list(keep_float_ops) or None,
                denylisted_nodes=list(keep_float_nodes) or None,
            )
    except Exception as e:  # the quantizer raises RuntimeError/ValueError with MLIR diagnostics
        lines = str(e).strip().splitlines()
        raise ConversionError(
            f"the TFLite quantizer failed keeping {len(keep_float_ops) + len(keep_float_nodes)} op(s) in "
            f"float with {io_type} I/O: {lines[0][:300] if lines else type(e).__name__}",
            hint="Try io_type='float32', or keep fewer ops in float.",
        ) from e
    check_io(bytes(out), io_type)
    return bytes(out)


def check_io(model: bytes, io_type: str) -> None:
    """Every input and output of ``model`` has type ``io_type``.

    Raises:
        ConversionError: One does not (what it is, and which tensor).
    """
    from liteship.convert.ops import io_specs
    from liteship.model.flatbuffer import load_model

    inputs, outputs = io_specs(load_model(model))
    wrong = [f"{s.name} is {s.dtype}" for s in (*inputs, *outputs) if s.dtype != NUMPY_IO[io_type]]
    if wrong:
        raise ConversionError(
            f"the quantized model does not have {io_type} I/O: {'; '.join(wrong)}.",
            hint="Use io_type='float32' for this model, or report it with the model attached.",
        )


__all__ = ["calibrate", "quantize_calibrated", "check_io"]
