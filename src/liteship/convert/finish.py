"""The end of every conversion, whatever the source: liteship's record written into the model, the file
saved, the :class:`~liteship.convert.ConversionReport` built (shared by the TensorFlow/Keras, float
``.tflite`` and PyTorch frontends)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from liteship import __version__
from liteship.convert.calibration import Calibration
from liteship.convert.ops import float32_size_estimate, io_specs, op_histogram
from liteship.convert.recipes import Recipe
from liteship.convert.report import ConversionReport
from liteship.convert.sources import Source
from liteship.errors import ConversionError
from liteship.model.flatbuffer import load_model, schema, write_liteship_info
from liteship.types import Preprocessing, TensorSpec

FLEX_WARNING = (
    "the model needs Select TensorFlow (Flex) ops: it runs only with the Flex delegate (a much bigger "
    "runtime, not in ai-edge-litert's builtin interpreter) and on no hardware delegate."
)
CUSTOM_WARNING = "the model needs custom ops: register their kernels with the interpreter on the device."
IDENTITY_WARNING = (
    "no normalization was given (mean/std), so the model records identity preprocessing: validate, run "
    "and the device agent will feed image pixels as 0..255. If the model was trained on normalized "
    "inputs (e.g. 0..1 or -1..1), re-convert with `mean`/`std` (e.g. mean 0, std 255), or its accuracy "
    "is that of a model fed the wrong numbers."
)


BUILTIN_OPS = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}


def _takes_images(inputs: list[TensorSpec]) -> bool:
    """One (N, H, W, C) input with 1, 3 or 4 channels: what image preprocessing applies to."""
    return len(inputs) == 1 and len(inputs[0].shape) == 4 and inputs[0].shape[-1] in (1, 3, 4)


def finish_conversion(
    model: bytes,
    src: Source,
    method: str,
    notes: list[str],
    recipe: Recipe,
    io: str,
    calib: Calibration | None,
    pre: Preprocessing,
    keep: tuple[str, ...],
    output: str | Path | None,
    seconds: float,
    fixes: dict[str, Any] | None = None,
    float_source: bytes | None = None,
) -> ConversionReport:
    """Write liteship's record into ``model``, save it to ``output`` and build the report (shared by
    every source kind: TF/Keras here, float .tflite and PyTorch in their own modules).

    ``float_source``: the float32 model the conversion started from, when there is one (a float
    ``.tflite``); the report's float32 size is then that model's own, carrying the same record, rather
    than an estimate from the converted weights."""
    loaded = load_model(model)
    ops = op_histogram(loaded)
    inputs, outputs = io_specs(loaded)
    needs_flex = any(name.startswith("Flex") for name in ops)
    needs_custom = any(name not in BUILTIN_OPS and not name.startswith("Flex") for name in ops)
    notes += [FLEX_WARNING] * needs_flex + [CUSTOM_WARNING] * needs_custom
    notes += [IDENTITY_WARNING] * (pre.is_identity and _takes_images(inputs))
    calib_range = _range_by_tflite_name(calib, [s.name for s in inputs]) if calib else {}
    info = {
        "liteship_version": __version__,
        "source": src.label,
        "recipe": recipe.name,
        "io_type": io,
        "preprocessing": pre.to_dict(),
        "calibration": {"source": calib.source, "samples": len(calib), "range": calib_range}
        if calib
        else None,
        "needs_flex": needs_flex,
        "needs_custom": needs_custom,
        "keep_float_layers": list(keep),
        "graph_fixes": sorted(fixes) if fixes else [],
    }
    data = write_liteship_info(model, info)
    if output is not None:
        out = Path(output)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        except OSError as e:
            raise ConversionError(f"cannot write {str(out)!r}: {e.strerror or e}.") from e
    if recipe.name == "none":
        float_size = len(data)
    elif float_source is not None:  # the float model itself, with the same record (issue 22, 11)
        float_size = len(write_liteship_info(float_source, info))
    else:
        float_size = float32_size_estimate(loaded) + len(data) - len(model)
    return ConversionReport(
        source=src.label,
        source_kind=src.kind,
        method=method,
        recipe=recipe.name,
        io_type=io,
        output=str(output) if output is not None else None,
        size_bytes=len(data),
        float32_size_bytes=float_size,
        ratio_to_float32=len(data) / float_size,
        ops=ops,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        conversion_seconds=round(seconds, 3),
        calibration_samples=len(calib) if calib else 0,
        calibration_range=calib_range,
        preprocessing=pre.to_dict(),
        needs_flex=needs_flex,
        needs_custom=needs_custom,
        keep_float_layers=keep,
        graph_fixes=fixes,
        warnings=tuple(notes),
        model_bytes=data,
    )


def _range_by_tflite_name(calib: Calibration, tflite_names: list[str]) -> dict[str, dict[str, float]]:
    """Key the calibration range by the .tflite input names, which the device sees."""
    ranges = calib.input_range()
    if len(ranges) == 1 and len(tflite_names) == 1:
        return {tflite_names[0]: next(iter(ranges.values()))}
    out = {}
    for name, r in ranges.items():
        match = next((t for t in tflite_names if name in t), name)
        out[match] = r
    return out


__all__ = ["BUILTIN_OPS", "CUSTOM_WARNING", "FLEX_WARNING", "IDENTITY_WARNING", "finish_conversion"]
