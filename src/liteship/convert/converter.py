"""``liteship.convert.convert``: any source → .tflite with a quantization recipe, and its report.

The keywords become one :class:`~liteship.convert.options.ConversionOptions`; the source's frontend
(:mod:`liteship.convert.frontends`: TensorFlow/Keras, float ``.tflite``, PyTorch) converts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liteship.convert.finish import BUILTIN_OPS, IDENTITY_WARNING, finish_conversion
from liteship.convert.frontends import calibrate, frontend_for
from liteship.convert.options import ConversionOptions, GraphFixes
from liteship.convert.report import ConversionReport
from liteship.convert.tf_source import CalibratedModel
from liteship.types import Preprocessing

_BUILTINS = BUILTIN_OPS  # the name benchmarks/quant_mobilenet.py imports


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
    opts = ConversionOptions(
        quantize=quantize,
        io_type=io_type,
        calibration=calibration,
        calibration_samples=calibration_samples,
        preprocessing=preprocessing,
        keep_float_layers=tuple(keep_float_layers),
        fixes=GraphFixes(
            equalize=equalize,
            adaround=adaround,
            bias_correction=bias_correction,
            range_setting=range_setting,
            absorb_high_bias=absorb_high_bias,
        ),
        progress=progress,
        allow_select_tf_ops=allow_select_tf_ops,
        allow_custom_ops=allow_custom_ops,
    )
    frontend = frontend_for(source)
    frontend.check_fixes(opts)
    return frontend.convert(source, output, opts)


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
    opts = ConversionOptions(
        quantize=quantize,
        io_type=io_type,
        calibration=calibration,
        calibration_samples=calibration_samples,
        preprocessing=preprocessing,
        fixes=GraphFixes(
            equalize=equalize,
            adaround=adaround,
            bias_correction=bias_correction,
            range_setting=range_setting,
            absorb_high_bias=absorb_high_bias,
        ),
        progress=False,
    )
    return calibrate(source, opts)


__all__ = ["convert", "calibrated_model", "CalibratedModel", "finish_conversion", "IDENTITY_WARNING"]
