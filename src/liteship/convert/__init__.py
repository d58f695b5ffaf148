"""Convert TensorFlow/Keras models to .tflite with a quantization recipe.

TensorFlow is imported inside the functions that need it, so ``import liteship.convert`` is cheap and
works without TensorFlow installed (converting then raises a UsageError saying what to install).

    >>> from liteship.convert import convert, RECIPES
    >>> report = convert("model.keras", "model.tflite", quantize="dynamic")   # doctest: +SKIP
"""

from __future__ import annotations

from liteship.convert.converter import convert
from liteship.convert.recipes import IO_TYPES, RECIPES, Recipe
from liteship.convert.report import ConversionReport
from liteship.convert.torch_source import TorchModel

__all__ = ["convert", "ConversionReport", "RECIPES", "Recipe", "IO_TYPES", "TorchModel"]
