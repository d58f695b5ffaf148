"""One table of what each source frontend converts — in the manner of ai-edge-quantizer's algorithm
manager: the TensorFlow/Keras, float ``.tflite`` and PyTorch frontends each declare their recipes and the
accuracy fixes they take, and :func:`liteship.convert.convert` dispatches through :data:`FRONTENDS`.

Adding a source kind is a :class:`Frontend` here (and its ``source_kind`` in ``convert/sources.py``);
a fix a source takes is its name in that frontend's ``fixes``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship.convert.options import ConversionOptions
from liteship.convert.recipes import RECIPES, resolve_recipe
from liteship.convert.report import ConversionReport
from liteship.convert.sources import KERAS_SUFFIXES, source_kind
from liteship.convert.tf_source import (
    CalibratedModel,
    calibrate_tensorflow,
    calibrated_recipe,
    check_recipe_fixes,
    convert_tensorflow,
)
from liteship.convert.tflite_quant import (
    TFLITE_RECIPES,
    calibrated_tflite,
    convert_tflite,
    resolve_tflite_recipe,
)
from liteship.convert.torch_source import TORCH_RECIPES, convert_torch
from liteship.errors import UsageError

Convert = Callable[[Any, "str | Path | None", ConversionOptions], ConversionReport]
Calibrate = Callable[[Any, ConversionOptions], CalibratedModel]


@dataclass(frozen=True)
class Frontend:
    """One source kind and what it converts.

    Attributes:
        kind: ``source_kind``'s name for it.
        description: One line for help texts.
        recipes: The recipes it takes.
        fixes: The accuracy fixes it takes (``range_setting`` goes with every one).
        convert: Source, output, options → the report.
        calibrate: Source, options → a calibrated float model (the float-op search), ``None`` if it cannot.
        fix_hint: What to do with a fix it does not take.
    """

    kind: str
    description: str
    recipes: tuple[str, ...]
    fixes: tuple[str, ...]
    convert: Convert
    calibrate: Calibrate | None
    fix_hint: str

    def check_fixes(self, opts: ConversionOptions) -> None:
        """A fix this frontend does not take is a usage error (the first one is named)."""
        wanted = [
            n
            for n in ("equalize", "absorb_high_bias", "bias_correction", "adaround")
            if getattr(opts.fixes, n)
        ]
        on = [n for n in wanted if n not in self.fixes]
        if on:
            raise UsageError(
                f"`{on[0]}` does not apply to a {self.kind} source.", hint=self.fix_hint, parameter=on[0]
            )


def _calibrate_tflite(source: Any, opts: ConversionOptions) -> CalibratedModel:
    recipe, _ = calibrated_recipe(opts)
    check_recipe_fixes(recipe, opts.fixes.equalize, opts.fixes.bias_correction, opts.fixes.absorb_high_bias)
    resolve_tflite_recipe(recipe.name, opts.io_type)  # float32 I/O only
    FRONTENDS["tflite"].check_fixes(opts)
    model, report = calibrated_tflite(
        source,
        opts.fixes,
        calibration=opts.calibration,
        calibration_samples=opts.calibration_samples,
        preprocessing=opts.resolved_preprocessing(),
    )
    return CalibratedModel(model, recipe.name, "float32", str(source), report.by_fix())


def _convert_torch(source: Any, output: str | Path | None, opts: ConversionOptions) -> ConversionReport:
    """A PyTorch source: litert-torch; with accuracy fixes or a range setting, litert-torch's float .tflite
    first, then the fixes on its graph and TFLite's quantizer, as for a float .tflite source (issue 20)."""
    if not (opts.fixes.rewrites_weights or opts.fixes.range_setting != "minmax"):
        return convert_torch(source, output, opts)
    with tempfile.TemporaryDirectory(prefix="liteship-torch-") as tmp:
        float_path = Path(tmp) / "float.tflite"
        convert_torch(
            source, float_path, ConversionOptions(preprocessing=opts.preprocessing, progress=opts.progress)
        )
        report = convert_tflite(float_path, output, opts)
    label = getattr(source, "name", None) or str(source)
    return dataclasses.replace(
        report, source=str(label), source_kind="torch", method=f"litert-torch+{report.method}"
    )


_TO_TFLITE = "Convert it to a float .tflite first (quantize='none'), then quantize that file with the fixes."
FRONTENDS: dict[str, Frontend] = {
    f.kind: f
    for f in (
        Frontend(
            "tensorflow",
            "SavedModel, .keras/.h5, keras.Model, tf.function: TFLite's converter; fixes on the Keras layers",
            tuple(RECIPES),
            ("equalize", "absorb_high_bias", "bias_correction"),
            convert_tensorflow,
            calibrate_tensorflow,
            "Convert the model to a float .tflite (quantize='none') and quantize that file: every fix acts on "
            "the float .tflite graph.",
        ),
        Frontend(
            "tflite",
            "a float32 .tflite: TFLite's calibrator and MLIR quantizer, or ai-edge-quantizer; fixes on its graph",
            tuple(TFLITE_RECIPES),
            ("equalize", "absorb_high_bias", "bias_correction", "adaround"),
            convert_tflite,
            _calibrate_tflite,
            "Use equalize and bias_correction instead (or convert the .keras/.h5 source the model came from).",
        ),
        Frontend(
            "torch",
            "PyTorch (.pt2, module.py:factory, nn.Module): litert-torch; fixes on its float .tflite graph",
            TORCH_RECIPES,
            ("equalize", "absorb_high_bias", "bias_correction", "adaround"),
            _convert_torch,
            None,
            _TO_TFLITE,
        ),
    )
}
# which accuracy fixes each source kind takes (the frontends' table, by kind)
SOURCE_FIXES: dict[str, tuple[str, ...]] = {k: f.fixes for k, f in FRONTENDS.items()}


def frontend_for(source: Any) -> Frontend:
    """The frontend that converts ``source`` (:func:`~liteship.convert.sources.source_kind`)."""
    return FRONTENDS[source_kind(source)]


def fix_problem(source: Any, fix: str) -> str | None:
    """Why ``fix`` cannot be applied to ``source`` (``None`` when it can)."""
    kind = source_kind(source)
    if fix in SOURCE_FIXES.get(kind, ()):
        if kind == "tensorflow" and Path(str(source)).suffix.lower() not in KERAS_SUFFIXES:
            return f"{fix} rewrites Keras weights; the source {source} is not a .keras/.h5 file"
        return None
    if kind == "tensorflow":
        return f"{fix} acts on a float .tflite graph; convert the Keras model to a float .tflite and use that as the source"
    if kind == "tflite":
        return (
            f"{fix} rewrites Keras layers; a float .tflite source takes {', '.join(SOURCE_FIXES['tflite'])}"
        )
    return f"{fix} does not apply to a {kind} source; convert it to a float .tflite first and use that as the source"


def calibrate(source: Any, opts: ConversionOptions) -> CalibratedModel:
    """A calibrate-only conversion through ``source``'s frontend."""
    frontend = frontend_for(source)
    if frontend.calibrate is None:
        resolve_recipe(opts.quantize, opts.io_type)
        raise UsageError(
            f"the float-op search calibrates TensorFlow/Keras and float .tflite sources, not a {frontend.kind} source.",
            hint="Convert it to a float .tflite first (quantize='none') and search from that file.",
        )
    return frontend.calibrate(source, opts)


__all__ = ["FRONTENDS", "SOURCE_FIXES", "Frontend", "calibrate", "fix_problem", "frontend_for"]
