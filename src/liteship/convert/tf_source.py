"""The TensorFlow/Keras frontend: SavedModel directories, Keras files and models, tf.functions through
TFLite's converter (``recipes.configure``), with the Keras fixes and range setting."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship._quiet import native_stderr_silenced
from liteship._tf import import_tf, tf_installed
from liteship.convert.calibration import Calibration, load_calibration
from liteship.convert.finish import BUILTIN_OPS, finish_conversion
from liteship.convert.ops import parse_unsupported_ops
from liteship.convert.options import ConversionOptions
from liteship.convert.recipes import RECIPES, Recipe, configure, resolve_recipe
from liteship.convert.report import ConversionReport
from liteship.convert.sources import Source, check_source_path, first_line, open_tf_source, quiet_stdout
from liteship.data import check_dataset_path
from liteship.errors import ConversionError, UnsupportedOpsError, UsageError
from liteship.quantize.denylist import calibrate, quantize_calibrated
from liteship.quantize.ranges import check_range_setting, set_ranges
from liteship.types import Preprocessing


@dataclass(frozen=True)
class CalibratedModel:
    """A calibrate-only conversion: a float model carrying activation ranges, ready to be quantized
    any number of times (``liteship.quantize.denylist.quantize_calibrated``)."""

    model: bytes
    recipe: str
    io_type: str
    source: str
    graph_fixes: dict[str, Any] | None


def convert_tensorflow(source: Any, output: str | Path | None, opts: ConversionOptions) -> ConversionReport:
    """The TensorFlow/Keras frontend: TFLite's converter with the recipe's settings, the Keras fixes
    (:func:`liteship.quantize.keras_repair.repair_source`) and range setting."""
    quantize, io_type, calibration = opts.quantize, opts.io_type, opts.calibration
    calibration_samples, preprocessing, progress = opts.calibration_samples, opts.preprocessing, opts.progress
    keep_float_layers, range_setting = opts.keep, opts.fixes.range_setting
    equalize, bias_correction = opts.fixes.equalize, opts.fixes.bias_correction
    absorb_high_bias = opts.fixes.absorb_high_bias
    allow_select_tf_ops, allow_custom_ops = opts.allow_select_tf_ops, opts.allow_custom_ops
    recipe, io = resolve_recipe(quantize, io_type)
    pre = (
        preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing.from_dict(preprocessing)
    )
    keep = tuple(keep_float_layers)
    _check_options(recipe, io, calibration, keep)
    check_recipe_fixes(recipe, equalize, bias_correction, absorb_high_bias)
    _check_range_setting(recipe, range_setting)

    if tf_installed():  # a wrong path fails before TensorFlow's import (without TF: say that first)
        if isinstance(source, (str, Path)):
            check_source_path(Path(source))
        if recipe.needs_calibration and isinstance(calibration, (str, Path)):
            check_dataset_path(calibration)

    import_tf()
    started = time.perf_counter()
    src = open_tf_source(source)
    calib = None
    if recipe.needs_calibration:
        calib = load_calibration(
            calibration, input_shapes=src.input_shapes(), samples=calibration_samples, preprocessing=pre
        )
    fixes: dict[str, Any] | None = None
    if equalize or bias_correction or absorb_high_bias:
        from liteship.quantize.keras_repair import repair_source

        src, fixes = repair_source(
            src, calib, equalize=equalize, bias_correction=bias_correction, absorb_high_bias=absorb_high_bias
        )
    if range_setting != "minmax":
        model, method, notes = _run_attempts(
            src, recipe, io, calib, None, progress, allow_select_tf_ops, allow_custom_ops
        )
        model, fixes = _with_ranges(model, calib, range_setting, fixes)
        from liteship.quantize.denylist import quantize_calibrated

        model = quantize_calibrated(
            model,
            io_type=io,
            keep_float_ops=[k for k in keep if k in BUILTIN_OPS],
            keep_float_nodes=[k for k in keep if k not in BUILTIN_OPS],
        )
    else:
        model, method, notes = _run_attempts(
            src, recipe, io, calib, keep, progress, allow_select_tf_ops, allow_custom_ops
        )
    if calibration is not None and not recipe.needs_calibration:
        notes.append(
            f"`calibration` was given but recipe {recipe.name!r} does not calibrate; it was not used "
            "(the calibrated recipes are int8, int8-fallback and int16x8)."
        )
    seconds = time.perf_counter() - started
    report = finish_conversion(
        model, src, method, notes, recipe, io, calib, pre, keep, output, seconds, fixes
    )
    return report


def calibrate_tensorflow(source: Any, opts: ConversionOptions) -> CalibratedModel:
    """A calibrate-only conversion of a TensorFlow/Keras source (see :class:`CalibratedModel`)."""
    recipe, io = calibrated_recipe(opts)
    check_recipe_fixes(recipe, opts.fixes.equalize, opts.fixes.bias_correction, opts.fixes.absorb_high_bias)
    equalize, bias_correction = opts.fixes.equalize, opts.fixes.bias_correction
    absorb_high_bias, range_setting = opts.fixes.absorb_high_bias, opts.fixes.range_setting
    calibration, calibration_samples, pre = (
        opts.calibration,
        opts.calibration_samples,
        opts.resolved_preprocessing(),
    )

    import_tf()
    src = open_tf_source(source)
    calib = load_calibration(
        calibration, input_shapes=src.input_shapes(), samples=calibration_samples, preprocessing=pre
    )
    fixes = None
    if equalize or bias_correction or absorb_high_bias:
        from liteship.quantize.keras_repair import repair_source

        src, fixes = repair_source(
            src, calib, equalize=equalize, bias_correction=bias_correction, absorb_high_bias=absorb_high_bias
        )
    _check_range_setting(recipe, range_setting)
    model, _, _ = _run_attempts(src, recipe, io, calib, None, False, False, False)
    if range_setting != "minmax":
        model, fixes = _with_ranges(model, calib, range_setting, fixes)
    return CalibratedModel(model, recipe.name, io, src.label, fixes)


def calibrated_recipe(opts: ConversionOptions) -> tuple[Recipe, str]:
    """The recipe of a calibrate-only conversion: int8 or int8-fallback (every source)."""
    recipe, io = resolve_recipe(opts.quantize, opts.io_type)
    if recipe.name not in ("int8", "int8-fallback"):
        raise UsageError(
            f"keeping ops in float works from recipes int8 and int8-fallback, not {recipe.name!r}: TFLite "
            "quantizes int16x8 with its older calibrator, which has no denylist.",
            hint="Start from int8 or int8-fallback (auto_mixed_precision.recipe).",
            parameter="quantize",
        )
    _check_options(recipe, io, opts.calibration, ())
    return recipe, io


def _check_range_setting(recipe: Recipe, range_setting: str) -> None:
    check_range_setting(range_setting)
    if range_setting != "minmax" and recipe.name not in ("int8", "int8-fallback"):
        raise UsageError(
            f"`range_setting` {range_setting!r} sets int8 activation ranges; recipe {recipe.name!r} "
            + (
                "is quantized by TFLite's older calibrator, whose ranges cannot be set."
                if recipe.name == "int16x8"
                else "does not quantize activations."
            ),
            hint="Use it with int8 or int8-fallback, or leave range_setting at 'minmax'.",
            parameter="range_setting",
        )


def _with_ranges(
    calibrated: bytes, calib: Calibration | None, method: str, fixes: dict[str, Any] | None
) -> tuple[bytes, dict[str, Any]]:
    """Set the calibrated model's activation ranges by ``method``; the report joins the graph fixes."""
    model, report = set_ranges(calibrated, calib.samples if calib else [], method)
    return model, {**(fixes or {}), "range_setting": report.to_dict()}


def _check_options(recipe: Recipe, io: str, calibration: Any, keep: tuple[str, ...]) -> None:
    if recipe.needs_calibration and calibration is None:
        calibrated = ", ".join(r.name for r in RECIPES.values() if r.needs_calibration)
        raise UsageError(
            f"recipe {recipe.name!r} needs calibration data, but `calibration` is not set.",
            hint=f"Pass `calibration` (an image folder, a .npy or .npz file) for {calibrated}, "
            "or use a recipe without calibration: dynamic, float16.",
            parameter="calibration",
        )
    if keep and recipe.name not in ("int8", "int8-fallback"):
        raise UsageError(
            f"`keep_float_layers` works with recipes int8 and int8-fallback, not {recipe.name!r}.",
            parameter="keep_float_layers",
        )


def check_recipe_fixes(
    recipe: Recipe, equalize: bool, bias_correction: bool, absorb_high_bias: bool = False
) -> None:
    for flag, on in (
        ("equalize", equalize),
        ("bias_correction", bias_correction),
        ("absorb_high_bias", absorb_high_bias),
    ):
        if on and not recipe.needs_calibration:
            raise UsageError(
                f"`{flag}` prepares a model for integer quantization; recipe {recipe.name!r} does not "
                "quantize activations.",
                hint="Use it with int8, int8-fallback or int16x8."
                if flag != "absorb_high_bias"
                else "Use it with int8 or int8-fallback.",
                parameter=flag,
            )
    if absorb_high_bias and recipe.name == "int16x8":
        from liteship.quantize.absorb import INT16_REASON

        raise UsageError(
            f"`absorb_high_bias` narrows int8 activation ranges; recipe 'int16x8' {INT16_REASON}",
            hint="Use it with int8 or int8-fallback (int16x8 needs no absorption).",
            parameter="absorb_high_bias",
        )


def _run_attempts(
    src: Source,
    recipe: Recipe,
    io: str,
    calib: Calibration | None,
    keep: tuple[str, ...] | None,
    progress: bool,
    allow_flex: bool,
    allow_custom: bool,
) -> tuple[bytes, str, list[str]]:
    """Convert (``keep=None``: calibrate only), trying the source's converter entry points in turn."""
    notes: list[str] = []
    attempts = src.attempts()
    for n, (method, make) in enumerate(attempts):
        last = n == len(attempts) - 1
        try:
            with contextlib.ExitStack() as stack, quiet_stdout(), native_stderr_silenced():
                converter = configure(
                    make(stack),
                    recipe,
                    io,
                    representative_dataset=calib.representative_dataset(progress=progress) if calib else None,
                    allow_select_tf_ops=allow_flex,
                    allow_custom_ops=allow_custom,
                )
                if keep is None:
                    from liteship.quantize.denylist import calibrate

                    model = calibrate(converter)
                else:
                    model = _quantize_keeping_float(converter, io, keep) if keep else converter.convert()
            return model, method, notes
        except (ConversionError, UsageError):
            raise
        except Exception as e:  # the converter raises ConverterError, ValueError, AttributeError, …
            unsupported = parse_unsupported_ops(e, src.layer_names)
            if unsupported is not None:
                raise _unsupported_error(unsupported, allow_flex) from None
            if last:
                raise ConversionError(
                    f"the TFLite converter failed on {src.label!r} ({method}): {first_line(e)}",
                    hint="Set LITESHIP_VERBOSE=1 (the CLI's -v) to see TensorFlow's full message.",
                ) from e
            notes.append(
                f"{method} failed ({first_line(e)}); converted through model.export() → from_saved_model "
                "instead (Keras 3, tensorflow#63987 / keras#19108)."
            )
    raise AssertionError("unreachable: every source has at least one attempt")


def _quantize_keeping_float(converter: Any, io: str, keep: tuple[str, ...]) -> bytes:
    """Calibrate once, then quantize with the named op types/output tensors left in float."""
    return quantize_calibrated(
        calibrate(converter),
        io_type=io,
        keep_float_ops=[k for k in keep if k in BUILTIN_OPS],
        keep_float_nodes=[k for k in keep if k not in BUILTIN_OPS],
    )


def _unsupported_error(found: Any, allow_flex: bool) -> UnsupportedOpsError:
    where = "; ".join(f"{op} in {', '.join(layers)}" for op, layers in found.layers.items())
    message = f"the model uses ops with no TFLite builtin kernel: {', '.join(found.ops)}"
    message += f" (produced by {where})." if where else "."
    if found.flex and not allow_flex:
        hint = (
            f"Set `allow_select_tf_ops` to run {', '.join(found.flex)} as TensorFlow (Flex) ops "
            "(a bigger runtime, no hardware delegate), or replace the layer with builtin ops."
        )
        if found.custom:
            hint += f" {', '.join(found.custom)} also needs `allow_custom_ops` and your own kernel."
    else:
        hint = (
            f"{', '.join(found.custom)} is not even a Flex op: set `allow_custom_ops` and register your "
            "own kernel on the device, or replace the layer with builtin ops."
        )
    return UnsupportedOpsError(message, ops=found.ops, layers=found.layers, hint=hint)


__all__ = ["CalibratedModel", "calibrate_tensorflow", "calibrated_recipe", "convert_tensorflow"]
