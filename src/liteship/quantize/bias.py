"""Empirical bias correction (Nagel et al. 2019, section 4.2) on a Keras model, before conversion.

Rounding weights to int8 shifts the mean of a layer's output: ``E[W_q·x] ≠ E[W·x]``, and the shift adds
up through the network (worst in depthwise convolutions, whose 9 weights per channel round coarsely).
This measures the shift on calibration data and subtracts it from the layer's bias:

``b ← b − (E[W_q · x_q] − E[W · x])`` per output channel, before the activation,

where ``W_q`` is the weight as TFLite's int8 quantizer stores it (symmetric, per output channel,
``scale = max|w| / 127``), ``x_q`` the layer's input in the weight-quantized network and ``x`` its input
in the float network. The float weights are kept (the converter quantizes them the same way), so the
float model changes by exactly the correction: ``max_abs_diff`` reports it, and the figure that matters
is how much closer the quantized outputs come to the float ones (``mean_shift_before``/``after``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from liteship.types import ReportMixin

LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")
BATCH = 32


@dataclass(frozen=True)
class CorrectedLayer(ReportMixin):
    """One layer's bias correction: the largest per-channel shift removed, in output units."""

    name: str
    max_shift: float
    mean_shift: float


@dataclass(frozen=True)
class BiasCorrectionReport(ReportMixin):
    """What :func:`correct_bias` changed.

    Attributes:
        layers: Every corrected layer.
        samples: Calibration samples the means were taken over.
        max_abs_diff: Largest |corrected − original| float output on those samples.
        output_error_before / output_error_after: Mean |weight-quantized − float| model output, before
            and after the correction (what the correction is for).
    """

    layers: tuple[CorrectedLayer, ...]
    samples: int
    max_abs_diff: float
    output_error_before: float
    output_error_after: float


def quantize_weights(w: np.ndarray, kind: str) -> np.ndarray:
    """``w`` rounded as TFLite's int8 quantizer does: symmetric, per output channel, 127 levels a side."""
    axes = (0, 1) if kind == "DepthwiseConv2D" else tuple(range(w.ndim - 1))
    scale = np.abs(w).max(axis=axes, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return (np.clip(np.round(w / scale), -127, 127) * scale).astype(np.float32)


def correct_bias(model: Any, data: np.ndarray) -> tuple[Any, BiasCorrectionReport]:
    """Correct the biases of every Conv2D, DepthwiseConv2D and Dense layer that has one.

    Args:
        model: A built ``keras.Model``; left untouched.
        data: Calibration inputs (batch first), preprocessed as the model expects.

    Returns:
        ``(corrected clone, BiasCorrectionReport)``.
    """
    import keras

    data = np.asarray(data, dtype=np.float32)
    targets = [la for la in model.layers if type(la).__name__ in LAYERS and len(la.get_weights()) > 1]
    corrected = _clone(model)
    simulated = _clone(model)  # weights rounded as int8: what the converted model computes
    for la in targets:
        w = simulated.get_layer(la.name).get_weights()
        simulated.get_layer(la.name).set_weights([quantize_weights(w[0], type(la).__name__), *w[1:]])
    before = _output_error(model, simulated, data)
    float_inputs = _layer_inputs(model, targets, data)
    quant_inputs = _layer_inputs(simulated, [simulated.get_layer(la.name) for la in targets], data)
    done = []
    for la, x_f, x_q in zip(targets, float_inputs, quant_inputs, strict=True):
        w = la.get_weights()
        kind = type(la).__name__
        w_q = quantize_weights(w[0], kind)
        shift = _channel_mean(la, x_q, w_q) - _channel_mean(la, x_f, w[0])
        for target in (corrected, simulated):
            tw = target.get_layer(la.name).get_weights()
            target.get_layer(la.name).set_weights([tw[0], (tw[1] - shift).astype(np.float32), *tw[2:]])
        done.append(CorrectedLayer(la.name, float(np.max(np.abs(shift))), float(np.mean(np.abs(shift)))))
    after = _output_error(model, simulated, data)
    del keras
    return corrected, BiasCorrectionReport(
        layers=tuple(done),
        samples=len(data),
        max_abs_diff=_max_diff(model, corrected, data),
        output_error_before=before,
        output_error_after=after,
    )


def _clone(model: Any) -> Any:
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _layer_inputs(model: Any, layers: list[Any], data: np.ndarray) -> list[np.ndarray]:
    import keras

    probe = keras.Model(model.inputs, [la.input for la in layers])
    out = probe.predict(data, batch_size=BATCH, verbose=0)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _channel_mean(layer: Any, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Mean pre-activation output (bias excluded) per output channel, batch by batch."""
    from keras import ops

    kind = type(layer).__name__
    total, n = None, 0
    for i in range(0, len(x), BATCH):
        xb = x[i : i + BATCH]
        if kind == "Dense":
            y = ops.matmul(xb, kernel)
        elif kind == "DepthwiseConv2D":
            y = ops.depthwise_conv(
                xb, kernel, strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate
            )
        else:
            y = ops.conv(
                xb, kernel, strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate
            )
        y = np.asarray(ops.convert_to_numpy(y), dtype=np.float64)
        s = y.reshape(-1, y.shape[-1]).sum(axis=0)
        total = s if total is None else total + s
        n += int(np.prod(y.shape[:-1]))
    assert total is not None
    return (total / n).astype(np.float32)


def _outputs(model: Any, data: np.ndarray) -> list[np.ndarray]:
    out = model.predict(data, batch_size=BATCH, verbose=0)
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]


def _output_error(a: Any, b: Any, data: np.ndarray) -> float:
    return float(
        np.mean([np.mean(np.abs(x - y)) for x, y in zip(_outputs(a, data), _outputs(b, data), strict=True)])
    )


def _max_diff(a: Any, b: Any, data: np.ndarray) -> float:
    return float(
        max(np.max(np.abs(x - y)) for x, y in zip(_outputs(a, data), _outputs(b, data), strict=True))
    )


__all__ = ["correct_bias", "quantize_weights", "BiasCorrectionReport", "CorrectedLayer"]
