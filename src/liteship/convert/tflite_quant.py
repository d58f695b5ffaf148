"""Float .tflite sources: quantize a third-party float32 .tflite with ai-edge-quantizer.

A model zoo file or a vendor's model arrives as a float32 .tflite that liteship did not convert. This
module quantizes it with Google's ai-edge-quantizer (``pip install 'liteship[quantizer]'``), with the
same calibration data, preprocessing and ``keep_float_layers`` as the TensorFlow recipes:

| recipe        | ai-edge-quantizer recipe | weights        | activations | calibration |
|---------------|--------------------------|----------------|-------------|-------------|
| ``none``      | (copied, not quantized)  | float32        | float32     | no          |
| ``int8``      | ``static_wi8_ai8``       | int8/channel   | int8        | yes         |
| ``int16x8``   | ``static_wi8_ai16``      | int8/channel   | int16       | yes         |
| ``dynamic``   | ``dynamic_wi8_afp32``    | int8/channel   | float32 (int8 on the fly) | no |
| ``weight-int8`` | ``weight_only_wi8_afp32`` | int8/channel | float32     | no          |
| ``weight-int4`` | ``weight_only_wi4_afp32`` | int4/channel | float32     | no          |
| ``float16``   | ``float_casting`` (FC, conv, depthwise, transpose conv, embedding) | float16 | float32 | no |

A legacy file (TOCO-era op codes, no signature) is normalized on load
(:func:`liteship.model.normalize.normalize_model`), so ai-edge-quantizer reads its ops as LiteRT runs them.

ai-edge-quantizer keeps the model's float32 inputs and outputs (it adds QUANTIZE/DEQUANTIZE at the
edges), so ``io_type`` is always ``float32`` here. TFLite Metadata already in the source (labels,
normalization, the zipped associated files) is carried into the quantized model.

The accuracy search's second backend is :func:`quantize_keeping_float`: the same model, recipe and
calibration with a list of op types or tensor names kept in float.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship._quiet import native_stderr_silenced
from liteship._tf import tf_installed
from liteship.convert.calibration import load_calibration
from liteship.convert.finish import finish_conversion
from liteship.convert.options import ConversionOptions
from liteship.convert.recipes import Recipe
from liteship.convert.report import ConversionReport
from liteship.convert.sources import Source
from liteship.errors import ConversionError, LiteshipError, ModelError, UsageError
from liteship.model import flatbuffer as fbm
from liteship.model.metadata import METADATA_ENTRY
from liteship.model.normalize import normalize_model
from liteship.model.preprocessing import check_dataset_fits, resolve_preprocessing
from liteship.quantize.denylist import quantize_calibrated
from liteship.quantize.graph_repair import GraphFixes, GraphRepairReport, calibrated_graph
from liteship.runtime import LiteRTRunner
from liteship.types import Preprocessing

INSTALL_HINT = "Install the extra: pip install 'liteship[quantizer]'."
SIGNATURE = "serving_default"
FLOAT16_RECIPE = "float_casting"  # not a recipe function of ai_edge_quantizer.recipe: built here
_FLOAT16_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D_TRANSPOSE", "EMBEDDING_LOOKUP")


@dataclass(frozen=True)
class TFLiteRecipe:
    """One recipe for a float .tflite source.

    Attributes:
        name: liteship's name (``int8``, ``weight-int4``…); the TF recipes' names where they mean the same.
        description: One line for help texts.
        needs_calibration: Whether representative data is required.
        aeq: The ai-edge-quantizer recipe function (``ai_edge_quantizer.recipe.<aeq>``); ``""`` for none.
    """

    name: str
    description: str
    needs_calibration: bool
    aeq: str


TFLITE_RECIPES: dict[str, TFLiteRecipe] = {
    r.name: r
    for r in (
        TFLiteRecipe("none", "float32 as given (metadata and liteship's record added)", False, ""),
        TFLiteRecipe("int8", "static: int8 weights and activations, float32 I/O", True, "static_wi8_ai8"),
        TFLiteRecipe("int16x8", "static: int8 weights, int16 activations", True, "static_wi8_ai16"),
        TFLiteRecipe("dynamic", "dynamic-range: int8 weights, float activations", False, "dynamic_wi8_afp32"),
        TFLiteRecipe("weight-int8", "weight-only int8, float compute", False, "weight_only_wi8_afp32"),
        TFLiteRecipe("weight-int4", "weight-only int4, float compute", False, "weight_only_wi4_afp32"),
        TFLiteRecipe("float16", "float16 weights, float32 compute", False, FLOAT16_RECIPE),
    )
}

_QUANTIZED_TYPES = {"int8", "uint8", "int16", "int4", "float16"}
_TYPE_NAMES = {
    v: k.lower()
    for k, v in vars(fbm.schema.TensorType).items()
    if not k.startswith("_") and isinstance(v, int)
}


def _aeq() -> Any:
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as e:
        raise UsageError(
            "quantizing a .tflite needs ai-edge-quantizer, which is not installed.", hint=INSTALL_HINT
        ) from e
    return quantizer, recipe


def resolve_tflite_recipe(quantize: str, io_type: str | None) -> TFLiteRecipe:
    """Check ``quantize``/``io_type`` for a .tflite source.

    Raises:
        UsageError: A recipe ai-edge-quantizer has no counterpart for, or integer I/O.
    """
    recipe = TFLITE_RECIPES.get(quantize)
    if recipe is None:
        raise UsageError(
            f"recipe {quantize!r} does not work on a .tflite source; expected one of "
            f"{', '.join(TFLITE_RECIPES)}.",
            hint="int8-fallback is a TFLite-converter recipe: convert the original TensorFlow/Keras "
            "model for it.",
            parameter="quantize",
        )
    if io_type not in (None, "float32"):
        raise UsageError(
            f"`io_type` {io_type!r} does not work on a .tflite source: ai-edge-quantizer keeps float32 "
            "model inputs and outputs.",
            hint="Leave io_type unset (float32), or convert the original TF/Keras model for integer I/O.",
            parameter="io_type",
        )
    return recipe


def quantized_tensors(model: fbm.LoadedModel) -> list[tuple[str, str]]:
    """``[(tensor name, type)]`` of the tensors that are already quantized (int8/uint8/int16/int4
    with quantization parameters, or float16 weights)."""
    found = []
    for sg in model.model.subgraphs or []:
        for t in sg.tensors or []:
            kind = _TYPE_NAMES.get(t.type, "")
            if kind not in _QUANTIZED_TYPES:
                continue
            q = t.quantization
            has_params = q is not None and q.scale is not None and len(q.scale) > 0
            if has_params or kind == "float16":
                name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name)
                found.append((name, kind))
    return found


def check_float_source(model: fbm.LoadedModel, where: str) -> None:
    """Raise a clear error when the .tflite is not a float32 model.

    Raises:
        ConversionError: The model is already quantized.
    """
    found = quantized_tensors(model)
    if found:
        kinds = sorted({k for _, k in found})
        raise ConversionError(
            f"{where} is already quantized ({len(found)} {'/'.join(kinds)} tensors, e.g. "
            f"{found[0][0]!r}); ai-edge-quantizer needs a float32 .tflite.",
            hint="Give the float32 model it was made from, or use this file as it is "
            "(liteship validate, bench and package accept it).",
        )


def check_builtin_ops(model: fbm.LoadedModel, where: str, recipe: str | None = None) -> None:
    """Raise a clear error when ai-edge-quantizer cannot run the model to quantize it: Select TensorFlow
    (Flex) or custom ops, which LiteRT's builtin runtime (its calibration engine) does not have.

    Raises:
        ConversionError: The model has Flex or custom ops.
    """
    codes = model.model.operatorCodes or []
    names = sorted(
        {
            fbm.op_name(model.model, i)
            for i, c in enumerate(codes)
            if fbm.builtin_code(c) == fbm.schema.BuiltinOperator.CUSTOM
        }
    )
    if not names:
        return
    flex = [n for n in names if n.startswith("Flex")]
    kind = "Select TensorFlow (Flex) ops" if flex else "custom ops"
    raise ConversionError(
        f"{where} needs {kind} ({', '.join(names[:4])}{', …' if len(names) > 4 else ''}), which LiteRT's "
        f"builtin runtime cannot run, so ai-edge-quantizer cannot read or calibrate it"
        + (f": recipe {recipe!r} does not apply to it." if recipe else "."),
        hint="Use the file as it is (recipe none; it runs with the Flex delegate or your op kernels), or "
        "quantize the original TensorFlow model with TFLite's converter.",
    )


def ensure_signature(data: bytes) -> bytes:
    """Return ``data`` normalized (:func:`liteship.model.normalize.normalize_model`): a ``serving_default``
    signature when it has none (ai-edge-quantizer calibrates and validates through signatures), op codes
    in ``builtin_code``. Inputs and outputs keep their tensor names."""
    return normalize_model(data)[0]


def signature_inputs(data: bytes) -> tuple[str, dict[str, tuple[int, ...]]]:
    """``(signature key, {input name: shape})`` of the model's first signature (LiteRT's view)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    sigs = interp.get_signature_list()
    key = SIGNATURE if SIGNATURE in sigs else next(iter(sigs))
    details = interp.get_signature_runner(key).get_input_details()
    return key, {name: tuple(int(d) for d in d_["shape_signature"]) for name, d_ in details.items()}


def _recipe_with_float(quantizer_mod: Any, recipe_mod: Any, recipe: TFLiteRecipe, keep: Sequence[str]) -> Any:
    """The ai-edge-quantizer Quantizer's recipe: ``recipe`` everywhere, then ``no_quantize`` for each
    kept op type (``MEAN``) or op output tensor name (matched exactly); later entries win."""
    builtin = {k for k in vars(fbm.schema.BuiltinOperator) if not k.startswith("_")}
    entries = _float16_entries() if recipe.aeq == FLOAT16_RECIPE else list(getattr(recipe_mod, recipe.aeq)())
    for k in keep:
        if k in builtin:
            entries.append({"regex": ".*", "operation": k, "algorithm_key": "no_quantize"})
        else:
            entries.append({"regex": f"^{re.escape(k)}$", "operation": "*", "algorithm_key": "no_quantize"})
    return entries


def _float16_entries() -> list[dict[str, Any]]:
    """ai-edge-quantizer's float casting: float16 weights for the ops it supports, float32 compute."""
    config = {
        "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
        "compute_precision": "FLOAT",
        "explicit_dequantize": True,
    }
    return [
        {"regex": ".*", "operation": op, "algorithm_key": FLOAT16_RECIPE, "op_config": config}
        for op in _FLOAT16_OPS
    ]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    from liteship.convert.sources import quiet_stdout

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        with quiet_stdout(), native_stderr_silenced(), warnings.catch_warnings():
            # calibration keeps every tensor (experimental_preserve_all_tensors), which LiteRT warns about
            warnings.simplefilter("ignore", UserWarning)
            if os.environ.get("LITESHIP_VERBOSE"):
                yield
            else:  # ai-edge-quantizer draws its own tqdm bar on Python's stderr
                with contextlib.redirect_stderr(io.StringIO()):
                    yield
    finally:
        absl.setLevel(level)


def quantize_keeping_float(
    model: str | Path | bytes,
    recipe: str = "int8",
    *,
    calibration: Sequence[Mapping[str, np.ndarray]] | None = None,
    keep_float: Sequence[str] = (),
) -> bytes:
    """Quantize a float32 .tflite with ai-edge-quantizer, keeping some ops in float.

    The accuracy search's second backend (beside TFLite's QuantizationDebugger for TF sources).

    Args:
        model: The float32 .tflite (path or bytes).
        recipe: A key of :data:`TFLITE_RECIPES` other than ``none``. Defaults to ``"int8"``.
        calibration: For ``int8``/``int16x8``: model-ready samples, one ``{input name: array with the
            batch dimension}`` per sample (the names of :func:`signature_inputs`).
        keep_float: Op types (``"MEAN"``, ``"FULLY_CONNECTED"``) or op output tensor names to keep in
            float32; the rest follows ``recipe``.

    Returns:
        The quantized model's bytes (no metadata handling; :func:`convert_tflite` adds that).

    Raises:
        UsageError: Unknown recipe, missing calibration, or ai-edge-quantizer not installed.
        ConversionError: The model is already quantized, or ai-edge-quantizer failed.
    """
    data, path = fbm.read_bytes(model) if not isinstance(model, bytes) else (model, None)
    where = repr(path) if path else "the model"
    loaded = fbm.load_model(data)
    check_float_source(loaded, where)
    rec = resolve_tflite_recipe(recipe, None)
    if rec.name == "none":
        raise UsageError("recipe 'none' does not quantize; give a quantizing recipe.", parameter="recipe")
    if rec.needs_calibration and not calibration:
        raise UsageError(
            f"recipe {rec.name!r} needs calibration samples, but `calibration` is empty.",
            parameter="calibration",
        )
    quantizer_mod, recipe_mod = _aeq()
    data = ensure_signature(data)
    key, _ = signature_inputs(data)
    try:
        with _quiet():
            qt = quantizer_mod.Quantizer(bytearray(data))
            qt.load_quantization_recipe(_recipe_with_float(quantizer_mod, recipe_mod, rec, keep_float))
            result_calib = None
            if qt.need_calibration:
                samples = [
                    {n: np.asarray(v, dtype=np.float32) for n, v in s.items()} for s in calibration or []
                ]
                result_calib = qt.calibrate({key: samples}, num_threads=1)
            result = qt.quantize(result_calib, enable_progress_report=False, enable_progress_bar=False)
    except (UsageError, ConversionError):
        raise
    except Exception as e:  # ai-edge-quantizer raises ValueError/KeyError/RuntimeError on what it cannot do
        from liteship.convert.sources import first_line

        raise ConversionError(
            f"ai-edge-quantizer failed on {where} with recipe {rec.name!r}: {first_line(e)}",
            hint="Try another recipe (weight-int8 quantizes the fewest ops), or keep the failing op in "
            "float with keep_float_layers.",
        ) from e
    # ai-edge-quantizer stores large weights after the flatbuffer (Buffer.offset/size); they stay there:
    # every rewrite afterwards (metadata, liteship's record, range setting) goes through
    # model.flatbuffer.pack_model(model, data), which keeps them.
    out = bytes(result.quantized_model)
    _check_loads(out, where, rec.name)
    return out


def _check_loads(model: bytes, where: str, recipe: str) -> None:
    """The quantized model loads and prepares in LiteRT, or a ConversionError now (not at validate time).

    ai-edge-quantizer 0.10's ``static_wi8_ai8`` writes, for MobileNetV1's first conv, int8 weights with a
    non-zero zero point, which LiteRT's CONV_2D refuses (``zero_point != 0``)."""
    try:
        LiteRTRunner(model).close()
    except LiteshipError as e:
        why = e.message.split(": ", 1)[-1] if e.message.startswith("LiteRT cannot load") else e.message
        raise ConversionError(
            f"ai-edge-quantizer's {recipe} model{'' if where == 'the model' else ' of ' + where} does not "
            f"load in LiteRT: {why.split('. Inspect')[0].replace(')Node', '). Node')}",
            hint="Try another recipe (int16x8, dynamic or weight-int8), keep the failing op in float "
            "(keep_float_layers), or convert the original TensorFlow/Keras model instead.",
        ) from e


def _carry_metadata(source: bytes, quantized: bytes) -> bytes:
    """Put the source's TFLite Metadata (and its zipped files) back where the quantizer dropped them."""
    src_entries = fbm.load_model(source).metadata
    out = quantized
    if METADATA_ENTRY in src_entries and METADATA_ENTRY not in fbm.load_model(out).metadata:
        out = fbm.set_metadata_entry(out, METADATA_ENTRY, src_entries[METADATA_ENTRY])
    files = fbm.associated_files(source)
    if files and not fbm.associated_files(out):
        out = fbm.attach_files(out, files)
    return out


def convert_tflite(
    source: str | Path, output: str | Path | None, opts: ConversionOptions
) -> ConversionReport:
    """Quantize a float32 .tflite: what :func:`liteship.convert.convert` does for a ``.tflite`` source.

    ``opts`` mean what ``convert``'s keywords mean; ``opts.fixes`` act on the float graph
    (:mod:`liteship.quantize.graph_repair`). ``int8`` goes through TFLite's calibrator and MLIR quantizer
    (the quantizer TensorFlow sources go through, with range setting, the fixes and ops kept in float)
    when TensorFlow is installed, else through ai-edge-quantizer. The preprocessing stored with the model is
    ``preprocessing`` when it is not the identity, else the normalization in the source's TFLite
    Metadata (if any).

    Returns:
        A :class:`~liteship.convert.ConversionReport` (``source_kind`` ``"tflite"``, ``method``
        ``"ai-edge-quantizer"`` or ``"copy"``).

    Raises:
        UsageError: Recipe/io_type that does not apply, missing calibration or extra.
        ConversionError: The file is already quantized, or ai-edge-quantizer failed.
    """
    rec = resolve_tflite_recipe(opts.quantize, opts.io_type)
    keep, calibration, preprocessing = opts.keep, opts.calibration, opts.preprocessing
    if rec.needs_calibration and calibration is None:
        raise UsageError(
            f"recipe {rec.name!r} needs calibration data, but `calibration` is not set.",
            hint="Pass `calibration` (an image folder, a .npy or .npz file), or use dynamic, weight-int8 "
            "or weight-int4.",
            parameter="calibration",
        )
    if keep and rec.name == "none":
        raise UsageError("`keep_float_layers` needs a quantizing recipe.", parameter="keep_float_layers")
    started = time.perf_counter()
    try:
        loaded = fbm.load_model(source)
    except ModelError as e:
        raise ConversionError(e.message, hint=e.hint) from e
    where = repr(str(source))
    check_float_source(loaded, where)
    if rec.name != "none":
        check_builtin_ops(loaded, where, rec.name)
    normalized, normalization = normalize_model(loaded)
    override = (  # an identity Preprocessing is the default, not an override; a dict holds given fields
        (None if preprocessing == Preprocessing() else preprocessing)
        if isinstance(preprocessing, Preprocessing)
        else preprocessing or None
    )
    rule = resolve_preprocessing(loaded, override)
    pre = rule.preprocessing
    notes: list[str] = []
    read = None
    if rec.needs_calibration:
        read, warning = check_dataset_fits(rule, calibration, where=f"calibration data {str(calibration)!r}")
        notes += [warning] if warning else []
    calib = None
    fix_reports: dict[str, Any] = {}
    if rec.name == "none":
        model, method = normalized, "copy"
    else:
        data = normalized
        _, shapes = signature_inputs(data)
        if rec.needs_calibration:
            calib = load_calibration(
                calibration, input_shapes=shapes, samples=opts.calibration_samples, preprocessing=pre
            )
        samples = [as_feed(s, calib.input_names) for s in _tracked(calib, opts.progress)] if calib else None
        fixes = opts.fixes
        if rec.name == "int8" and samples is not None and _mlir_available(fixes):
            model, graph_report = quantize_graph_int8(data, samples, fixes, keep)
            method, fix_reports = "tflite-mlir-quantizer", graph_report.by_fix()
        else:
            model = quantize_keeping_float(data, rec.name, calibration=samples, keep_float=keep)
            method = "ai-edge-quantizer"
        model = _carry_metadata(loaded.data, model)
        if not quantized_tensors(fbm.load_model(model)):
            notes.append(
                f"recipe {rec.name!r} quantized no tensor of {where}: ai-edge-quantizer left every op in "
                "float, so the model is as large and as fast as the float32 file. Try int8 (calibrated), or "
                "convert the original TensorFlow/Keras model with TFLite's converter."
            )
    if calibration is not None and not rec.needs_calibration:
        notes.append(
            f"`calibration` was given but recipe {rec.name!r} does not calibrate; it was not used "
            "(the calibrated recipes are int8 and int16x8)."
        )
    src = Source("tflite", str(source), str(source))
    seconds = time.perf_counter() - started
    as_recipe = Recipe(rec.name, rec.description, rec.needs_calibration, ("float32",))
    report = finish_conversion(
        model,
        src,
        method,
        notes,
        as_recipe,
        "float32",
        calib,
        pre,
        keep,
        output,
        seconds,
        fix_reports or None,
        float_source=normalized,
    )
    return dataclasses.replace(
        report, source_normalization=normalization.to_dict(), preprocessing_rule=rule.describe(read)
    )


def _mlir_available(fixes: GraphFixes) -> bool:
    """Whether the int8 path through TFLite's calibrator and MLIR quantizer can run (TensorFlow is
    installed); the fixes need it, so asking for one without TensorFlow is a usage error."""
    if tf_installed():
        return True
    if fixes.rewrites_weights or fixes.range_setting != "minmax":
        raise UsageError(
            f"the accuracy fixes ({', '.join(fixes.names())}) calibrate with TFLite's calibrator, which comes "
            "with TensorFlow.",
            hint="pip install 'liteship[convert]', or leave the fixes off (ai-edge-quantizer's plain int8).",
        )
    return False


def quantize_graph_int8(
    data: bytes, samples: Sequence[Any], fixes: GraphFixes, keep: Sequence[str] = ()
) -> tuple[bytes, GraphRepairReport]:
    """Static int8 of a float .tflite with float32 I/O: the graph fixes, TFLite's calibrator, range
    setting, then the MLIR quantizer keeping ``keep`` (op types or op output names) in float."""
    calibrated, report = calibrated_graph(data, _as_lists(samples), fixes)
    types = [k for k in keep if k.isupper() and ";" not in k and "/" not in k]
    nodes = [k for k in keep if k not in types]
    model = quantize_calibrated(calibrated, io_type="float32", keep_float_ops=types, keep_float_nodes=nodes)
    return model, report


def calibrated_tflite(
    source: str | Path,
    fixes: GraphFixes,
    *,
    calibration: Any,
    calibration_samples: int = 200,
    preprocessing: Preprocessing | None = None,
) -> tuple[bytes, GraphRepairReport]:
    """A float .tflite repaired by ``fixes``, calibrated and range-set: what the float-op search quantizes
    many times (``liteship.convert.calibrated_model`` for a .tflite source)."""
    loaded = fbm.load_model(source)
    check_float_source(loaded, repr(str(source)))
    override = None if preprocessing is None or preprocessing == Preprocessing() else preprocessing
    pre = resolve_preprocessing(loaded, override).preprocessing
    data, _ = normalize_model(loaded)
    _, shapes = signature_inputs(data)
    calib = load_calibration(calibration, input_shapes=shapes, samples=calibration_samples, preprocessing=pre)
    samples = [as_feed(s, calib.input_names) for s in _tracked(calib, False)]
    return calibrated_graph(data, _as_lists(samples), fixes)


def _as_lists(samples: Sequence[Any]) -> list[list[np.ndarray]]:
    """Samples in model input order (the calibrator and LiteRT take them positionally)."""
    return [list(s.values()) if isinstance(s, Mapping) else list(s) for s in samples]


def _tracked(calib: Any, progress: bool) -> Any:
    return calib.representative_dataset(progress=progress)()


def as_feed(sample: Any, names: list[str]) -> dict[str, np.ndarray]:
    """One calibration sample as a feed by input name (a sample is a mapping or a sequence in input order)."""
    if isinstance(sample, dict):
        return {n: np.asarray(v) for n, v in sample.items()}
    return {n: np.asarray(v) for n, v in zip(names, sample, strict=True)}


__all__ = [
    "TFLITE_RECIPES",
    "TFLiteRecipe",
    "calibrated_tflite",
    "check_builtin_ops",
    "check_float_source",
    "convert_tflite",
    "ensure_signature",
    "quantize_graph_int8",
    "quantize_keeping_float",
    "quantized_tensors",
    "resolve_tflite_recipe",
    "signature_inputs",
]
