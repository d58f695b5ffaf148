"""liteship: take a trained model (Keras, PyTorch, float .tflite) to a fleet of edge devices and keep it healthy there.

The public API is loaded lazily so that ``import liteship`` never imports TensorFlow: the device side
(``liteship.runtime``, ``.model``, ``.package``, ``.agent``) works without it.

    >>> import liteship
    >>> report = liteship.convert("model.keras", "model.tflite", quantize="int8",
    ...                           calibration="calib.npy")            # doctest: +SKIP
    >>> liteship.inspect_model("model.tflite").inputs                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "LiteshipError": "liteship.errors",
    "GateFailed": "liteship.errors",
    "Preprocessing": "liteship.types",
    "TensorSpec": "liteship.types",
    "Dataset": "liteship.data",
    "load_dataset": "liteship.data",
    "convert": "liteship.convert",
    "ConversionReport": "liteship.convert",
    "RECIPES": "liteship.convert",
    "inspect_model": "liteship.model",
    "InspectReport": "liteship.model",
    "Runner": "liteship.runtime",
    "LiteRTRunner": "liteship.runtime",
    "KerasRunner": "liteship.runtime",
    "SavedModelRunner": "liteship.runtime",
    "validate": "liteship.validate",
    "ValidationReport": "liteship.validate",
    "benchmark": "liteship.bench",
    "BenchReport": "liteship.bench",
    "read_metadata": "liteship.model.metadata",
    "write_metadata": "liteship.model.metadata",
    "build_package": "liteship.package",
    "verify_package": "liteship.package",
    "generate_keypair": "liteship.package",
    "equalize": "liteship.quantize",
    "correct_bias": "liteship.quantize",
    "search_float_layers": "liteship.quantize",
    "run_pipeline": "liteship.pipeline",
    "PipelineReport": "liteship.pipeline",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'liteship' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
