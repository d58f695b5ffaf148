"""Quantization recipes: one data table, and the converter settings each recipe implies.

| recipe          | weights | activations | calibration | I/O types (default first)   |
|-----------------|---------|-------------|-------------|-----------------------------|
| ``none``        | float32 | float32     | no          | float32                     |
| ``dynamic``     | int8    | float32     | no          | float32                     |
| ``int8``        | int8    | int8        | yes         | int8, uint8, float32        |
| ``int8-fallback``| int8   | int8, float where no int8 kernel | yes | float32, int8, uint8 |
| ``float16``     | float16 | float32     | no          | float32                     |
| ``int16x8``     | int8    | int16       | yes         | float32, int16              |

``weight-int8`` and ``weight-int4`` (``WEIGHT_ONLY_RECIPES``) are ai-edge-quantizer's: they quantize a
float .tflite or a PyTorch source (``convert/tflite_quant.py``); ``RECIPE_NAMES`` is every name.

``int16x8`` takes float32 or int16 I/O: TFLite's 16x8 mode has no int8/uint8 input/output conversion
(its quantized I/O type is int16). Source: the TensorFlow post-training quantization guide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liteship.errors import UsageError


@dataclass(frozen=True)
class Recipe:
    """One quantization recipe.

    Attributes:
        name: The recipe's name, e.g. ``"int8"``.
        description: One line for help texts and reports.
        needs_calibration: Whether a representative dataset is required.
        io_types: Accepted input/output types; the first is the default.
    """

    name: str
    description: str
    needs_calibration: bool
    io_types: tuple[str, ...]

    @property
    def default_io_type(self) -> str:
        return self.io_types[0]


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("none", "float32 weights and activations (plain conversion)", False, ("float32",)),
        Recipe("dynamic", "dynamic-range: int8 weights, float activations", False, ("float32",)),
        Recipe(
            "int8",
            "full integer: int8 weights and activations (TFLITE_BUILTINS_INT8)",
            True,
            ("int8", "uint8", "float32"),
        ),
        Recipe(
            "int8-fallback",
            "integer with float fallback for ops without an int8 kernel",
            True,
            ("float32", "int8", "uint8"),
        ),
        Recipe("float16", "float16 weights, float32 compute", False, ("float32",)),
        Recipe(
            "int16x8",
            "16-bit activations, 8-bit weights (EXPERIMENTAL_..._INT16_WEIGHTS_INT8)",
            True,
            ("float32", "int16"),
        ),
    )
}

IO_TYPES = ("float32", "int8", "uint8", "int16")

# ai-edge-quantizer's weight-only recipes (convert/tflite_quant.py): float .tflite and PyTorch sources.
WEIGHT_ONLY_RECIPES = ("weight-int8", "weight-int4")
RECIPE_NAMES = (*RECIPES, *WEIGHT_ONLY_RECIPES)  # every recipe `convert` takes, for some source


def resolve_recipe(quantize: str, io_type: str | None) -> tuple[Recipe, str]:
    """Check ``quantize`` and ``io_type`` and return ``(recipe, io_type)``.

    Raises:
        UsageError: Unknown recipe, or an I/O type the recipe cannot produce.
    """
    recipe = RECIPES.get(quantize)
    if recipe is None and quantize in WEIGHT_ONLY_RECIPES:
        raise UsageError(
            f"recipe {quantize!r} quantizes a float .tflite or a PyTorch source (with ai-edge-quantizer); "
            f"a TensorFlow/Keras source takes {', '.join(RECIPES)}.",
            hint=f"Convert with recipe none first, then give that .tflite as the source for {quantize!r}; "
            "or use dynamic (int8 weights, float activations).",
            parameter="quantize",
        )
    if recipe is None:
        raise UsageError(
            f"unknown quantization recipe {quantize!r} for `quantize`; expected one of {', '.join(RECIPES)}.",
            parameter="quantize",
        )
    chosen = io_type or recipe.default_io_type
    if chosen not in recipe.io_types:
        raise UsageError(
            f"`io_type` {chosen!r} does not work with recipe {recipe.name!r}; "
            f"it supports {', '.join(recipe.io_types)}.",
            hint="Integer I/O needs an integer recipe (int8, int8-fallback; int16 with int16x8).",
            parameter="io_type",
        )
    return recipe, chosen


def configure(
    converter: Any,
    recipe: Recipe,
    io_type: str,
    *,
    representative_dataset: Any = None,
    allow_select_tf_ops: bool = False,
    allow_custom_ops: bool = False,
) -> Any:
    """Set a ``tf.lite.TFLiteConverter`` up for ``recipe``; returns the converter."""
    import tensorflow as tf

    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if recipe.name != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if recipe.needs_calibration:
        converter.representative_dataset = representative_dataset
    if recipe.name == "int8":
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif recipe.name == "int16x8":
        ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    elif recipe.name == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if allow_select_tf_ops:
        ops = [*ops, tf.lite.OpsSet.SELECT_TF_OPS]
    converter.target_spec.supported_ops = ops
    converter.allow_custom_ops = allow_custom_ops
    if io_type != "float32":
        dtype = getattr(tf, io_type)
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
    return converter


__all__ = ["Recipe", "RECIPES", "IO_TYPES", "resolve_recipe", "configure"]
