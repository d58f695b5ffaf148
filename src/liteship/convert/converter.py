"""``liteship.convert``: a TF/Keras model → .tflite with a quantization recipe, and its report."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship._quiet import native_stderr_silenced
from liteship.convert.calibration import Calibration, load_calibration
from liteship.convert.ops import float32_size_estimate, io_specs, op_histogram, parse_unsupported_ops
from liteship.convert.recipes import RECIPES, Recipe, configure, resolve_recipe
from liteship.convert.report import ConversionReport
from liteship.convert.sources import Source, check_source_path, first_line, open_source, quiet_stdout
from liteship.data import check_dataset_path
from liteship.errors import ConversionError, UnsupportedOpsError, UsageError
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


def convert(
    source: Any,
    output: str | Path | None = None,
    *,
    quantize: str = "none",
    io_type: str | None = None,
    calibration: Any = None,
    calibration_samples: int = 200,
    preprocessing: Preprocessing | dict[str, Any] | None = None,
    allow_select_tf_ops: bool = False,
    allow_custom_ops: bool = False,
    keep_float_layers: Sequence[str] = (),
    equalize: bool = False,
    bias_correction: bool = False,
    range_setting: str = "minmax",
    progress: bool = True,
    absorb_high_bias: bool = False,
    adaround: bool = False,
) -> ConversionReport:
    """Convert a TensorFlow/Keras model to a .tflite with a quantization recipe.

    Args:
        source: A SavedModel directory, a ``.keras``/``.h5`` file, a ``keras.Model``, or a
            ``tf.function`` (with an input signature) or concrete function; or a float32 ``.tflite``
            (quantized by ai-edge-quantizer) or a PyTorch model (``TorchModel``, ``.pt2``,
            ``module.py:factory``; converted by litert-torch): see ``liteship.convert.sources``.
        output: Where to write the .tflite. Defaults to ``None``: not written (see
            ``report.model_bytes``).
        quantize: A recipe from ``RECIPES``: ``none``, ``dynamic``, ``int8``, ``int8-fallback``,
            ``float16`` or ``int16x8``. Defaults to ``"none"``.
        io_type: Input/output type: ``float32``, ``int8``, ``uint8`` (integer recipes) or ``int16``
            (``int16x8``). Defaults to ``int8`` for ``int8``, ``float32`` otherwise.
        calibration: Representative data for ``int8``, ``int8-fallback`` and ``int16x8``: an image
            folder, a ``.npy``/``.npz`` file, an array, a callable or a ``Dataset``.
        calibration_samples: Samples to calibrate on, at most. Defaults to 200.
        preprocessing: Applied to the calibration data and stored with the model. Defaults to
            identity.
        allow_select_tf_ops: Let ops without a builtin kernel run as TensorFlow (Flex) ops.
        allow_custom_ops: Let such ops stay as custom ops (you supply their kernels).
        keep_float_layers: For ``int8``/``int8-fallback``: op types (``"MEAN"``) or op output tensor
            names to keep in float (TFLite's MLIR quantizer with a denylist, calibrated once). The
            requested ``io_type`` is kept: the quantizer adds QUANTIZE/DEQUANTIZE at the boundary.
        equalize: Cross-layer equalization of the Keras source before conversion (integer recipes;
            see :func:`liteship.quantize.equalize`). Fixes outlier channels without float layers.
        bias_correction: Empirical bias correction on the calibration data before conversion
            (integer recipes; see :func:`liteship.quantize.correct_bias`).
        range_setting: How activation ranges are set from the calibration data (``int8``,
            ``int8-fallback``): ``minmax`` (TFLite's default), ``percentile`` or ``mse`` (see
            :mod:`liteship.quantize.ranges`). Defaults to ``"minmax"``.
        progress: Draw a progress bar while calibrating (only on a terminal). Defaults to ``True``.
        absorb_high_bias: High-bias absorption of the Keras source before conversion, after
            ``equalize`` (``int8``, ``int8-fallback``; see :mod:`liteship.quantize.absorb`): a layer's
            output shifted down by its minimum on the calibration data, the next layer's bias compensating.
        adaround: Learned rounding of the int8 weights (AdaRound, :mod:`liteship.quantize.adaround`),
            ``int8`` of a float ``.tflite`` source. For a float ``.tflite`` source every fix (``equalize``,
            ``bias_correction``, ``adaround``, ``range_setting``) acts on its graph
            (:mod:`liteship.quantize.graph_repair`).

    Returns:
        A :class:`ConversionReport`; the model carries liteship's record (metadata ``LITESHIP``).

    Raises:
        UsageError: Bad arguments, e.g. a calibrated recipe without ``calibration``.
        DataError: The calibration data cannot be used.
        UnsupportedOpsError: The model uses ops the allowed op sets cannot express.
        ConversionError: The source cannot be read, or the converter failed otherwise.

    Example:
        >>> report = convert("model.keras", "model.tflite", quantize="int8",
        ...                  calibration="calib.npy")                  # doctest: +SKIP
        >>> report.ratio_to_float32                                     # doctest: +SKIP
        0.27
    """
    from liteship.convert.sources import convert_other_source, source_kind

    kind = source_kind(source)
    _check_fix_source(kind, equalize, bias_correction, absorb_high_bias, adaround)
    if range_setting != "minmax" and kind not in ("tensorflow", "tflite", "torch"):
        raise UsageError(
            f"`range_setting` {range_setting!r} works on TensorFlow/Keras, float .tflite and PyTorch sources; this "
            f"source is a {kind} model.",
            hint="Convert it to a float .tflite first (quantize='none'), then quantize that file.",
            parameter="range_setting",
        )
    options: dict[str, Any] = {
        "quantize": quantize,
        "io_type": io_type,
        "calibration": calibration,
        "calibration_samples": calibration_samples,
        "preprocessing": preprocessing,
        "keep_float_layers": keep_float_layers,
        "progress": progress,
    }
    if kind in ("tflite", "torch"):
        from liteship.quantize.graph_repair import GraphFixes

        on_graph = GraphFixes(
            equalize=equalize,
            adaround=adaround,
            bias_correction=bias_correction,
            range_setting=range_setting,
            absorb_high_bias=absorb_high_bias,
        )
        if kind == "torch" and (on_graph.rewrites_weights or range_setting != "minmax"):
            return _torch_through_float_graph(source, output, on_graph, **options)
        if kind == "tflite":
            options["fixes"] = on_graph
    other = convert_other_source(source, output, **options)  # a float .tflite or PyTorch: convert/sources.py
    if other is not None:
        return other
    recipe, io = resolve_recipe(quantize, io_type)
    pre = (
        preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing.from_dict(preprocessing)
    )
    keep = tuple(keep_float_layers)
    _check_options(recipe, io, calibration, keep)
    _check_fixes(recipe, equalize, bias_correction, absorb_high_bias)
    _check_range_setting(recipe, range_setting)
    from liteship._tf import import_tf, tf_installed

    if tf_installed():  # a wrong path fails before TensorFlow's import (without TF: say that first)
        if isinstance(source, (str, Path)):
            check_source_path(Path(source))
        if recipe.needs_calibration and isinstance(calibration, (str, Path)):
            check_dataset_path(calibration)

    import_tf()
    started = time.perf_counter()
    src = open_source(source)
    calib = None
    if recipe.needs_calibration:
        calib = load_calibration(
            calibration, input_shapes=src.input_shapes(), samples=calibration_samples, preprocessing=pre
        )
    fixes: dict[str, Any] | None = None
    if equalize or bias_correction or absorb_high_bias:
        from liteship.quantize.repair import repair_source

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
            keep_float_ops=[k for k in keep if k in _BUILTINS],
            keep_float_nodes=[k for k in keep if k not in _BUILTINS],
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


@dataclass(frozen=True)
class CalibratedModel:
    """A calibrate-only conversion: a float model carrying activation ranges, ready to be quantized
    any number of times (``liteship.quantize.denylist.quantize_calibrated``)."""

    model: bytes
    recipe: str
    io_type: str
    source: str
    graph_fixes: dict[str, Any] | None


def calibrated_model(
    source: Any,
    *,
    quantize: str = "int8",
    io_type: str | None = None,
    calibration: Any = None,
    calibration_samples: int = 200,
    preprocessing: Preprocessing | dict[str, Any] | None = None,
    equalize: bool = False,
    bias_correction: bool = False,
    range_setting: str = "minmax",
    absorb_high_bias: bool = False,
    adaround: bool = False,
) -> CalibratedModel:
    """Calibrate ``source`` once for ``quantize`` (``int8`` or ``int8-fallback``), as :func:`convert` would.

    Raises:
        UsageError: Another recipe (``int16x8`` is quantized by TFLite's older calibrator, which cannot
            keep ops in float), or the same argument errors as :func:`convert`.
    """
    recipe, io = resolve_recipe(quantize, io_type)
    if recipe.name not in ("int8", "int8-fallback"):
        raise UsageError(
            f"keeping ops in float works from recipes int8 and int8-fallback, not {recipe.name!r}: TFLite "
            "quantizes int16x8 with its older calibrator, which has no denylist.",
            hint="Start from int8 or int8-fallback (auto_mixed_precision.recipe).",
            parameter="quantize",
        )
    pre = (
        preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing.from_dict(preprocessing)
    )
    _check_options(recipe, io, calibration, ())
    _check_fixes(recipe, equalize, bias_correction, absorb_high_bias)
    from liteship.convert.sources import source_kind

    if source_kind(source) == "tflite":
        from liteship.convert.tflite_quant import calibrated_tflite, resolve_tflite_recipe
        from liteship.quantize.graph_repair import GraphFixes

        resolve_tflite_recipe(recipe.name, io_type)  # float32 I/O only

        _check_fix_source("tflite", equalize, bias_correction, absorb_high_bias, adaround)
        fixes_on = GraphFixes(
            equalize=equalize,
            adaround=adaround,
            bias_correction=bias_correction,
            range_setting=range_setting,
            absorb_high_bias=absorb_high_bias,
        )
        model, report = calibrated_tflite(
            source,
            fixes_on,
            calibration=calibration,
            calibration_samples=calibration_samples,
            preprocessing=pre,
        )
        return CalibratedModel(model, recipe.name, "float32", str(source), report.by_fix())
    from liteship._tf import import_tf

    import_tf()
    src = open_source(source)
    calib = load_calibration(
        calibration, input_shapes=src.input_shapes(), samples=calibration_samples, preprocessing=pre
    )
    fixes = None
    if equalize or bias_correction or absorb_high_bias:
        from liteship.quantize.repair import repair_source

        src, fixes = repair_source(
            src, calib, equalize=equalize, bias_correction=bias_correction, absorb_high_bias=absorb_high_bias
        )
    _check_range_setting(recipe, range_setting)
    model, _, _ = _run_attempts(src, recipe, io, calib, None, False, False, False)
    if range_setting != "minmax":
        model, fixes = _with_ranges(model, calib, range_setting, fixes)
    return CalibratedModel(model, recipe.name, io, src.label, fixes)


def _check_range_setting(recipe: Recipe, range_setting: str) -> None:
    from liteship.quantize.ranges import check_range_setting

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
    from liteship.quantize.ranges import set_ranges

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


def _check_fixes(
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


def _torch_through_float_graph(source: Any, output: Any, fixes: Any, **options: Any) -> ConversionReport:
    """A PyTorch source with accuracy fixes: litert-torch's float .tflite first, then the fixes on its
    graph and TFLite's quantizer, as for a float .tflite source (issue 20: every repair on every source)."""
    import dataclasses
    import tempfile

    from liteship.convert.tflite_quant import convert_tflite
    from liteship.convert.torch_source import convert_torch

    with tempfile.TemporaryDirectory(prefix="liteship-torch-") as tmp:
        float_path = Path(tmp) / "float.tflite"
        convert_torch(
            source,
            float_path,
            quantize="none",
            preprocessing=options.get("preprocessing"),
            progress=options.get("progress", True),
        )
        report = convert_tflite(float_path, output, fixes=fixes, **options)
    label = getattr(source, "name", None) or str(source)
    return dataclasses.replace(
        report, source=str(label), source_kind="torch", method=f"litert-torch+{report.method}"
    )


def _check_fix_source(
    kind: str, equalize: bool, bias_correction: bool, absorb_high_bias: bool, adaround: bool = False
) -> None:
    """Which fixes a source kind takes: a float .tflite takes every fix but high-bias absorption (they act
    on its graph); a Keras/SavedModel source every fix but learned rounding (they act on the Keras model);
    a PyTorch source none (convert it to a float .tflite first)."""
    from liteship.convert.sources import SOURCE_FIXES

    wanted = {
        "equalize": equalize,
        "absorb_high_bias": absorb_high_bias,
        "bias_correction": bias_correction,
        "adaround": adaround,
    }
    supported = SOURCE_FIXES.get(kind, ())
    on = [n for n, v in wanted.items() if v and n not in supported]
    if not on:
        return
    if kind == "tensorflow":
        hint = (
            "Convert the model to a float .tflite (quantize='none') and quantize that file: every fix acts on "
            "the float .tflite graph."
        )
    elif kind == "tflite":
        hint = (
            "Use equalize and bias_correction instead (or convert the .keras/.h5 source the model came from)."
        )
    else:
        hint = (
            "Convert it to a float .tflite first (quantize='none'), then quantize that file with the fixes."
        )
    raise UsageError(f"`{on[0]}` does not apply to a {kind} source.", hint=hint, parameter=on[0])


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
    from liteship.quantize.denylist import calibrate, quantize_calibrated

    return quantize_calibrated(
        calibrate(converter),
        io_type=io,
        keep_float_ops=[k for k in keep if k in _BUILTINS],
        keep_float_nodes=[k for k in keep if k not in _BUILTINS],
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
    from liteship import __version__

    loaded = load_model(model)
    ops = op_histogram(loaded)
    inputs, outputs = io_specs(loaded)
    needs_flex = any(name.startswith("Flex") for name in ops)
    needs_custom = any(name not in _BUILTINS and not name.startswith("Flex") for name in ops)
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


_BUILTINS = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}


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


__all__ = ["convert", "calibrated_model", "CalibratedModel", "finish_conversion"]
