"""Weight fixes on a Keras source's layers before conversion: equalization, high-bias absorption, then bias
correction."""

from __future__ import annotations

from typing import Any

import numpy as np

from liteship.errors import UsageError

CHECK_SAMPLES = 64  # inputs the float outputs are compared on
FLOAT_TOLERANCE = 1e-4  # relative to the largest output: equalization must stay within float32 noise


def repair_source(
    src: Any, calib: Any, *, equalize: bool, bias_correction: bool, absorb_high_bias: bool = False
) -> tuple[Any, dict[str, Any]]:
    """Equalize and/or bias-correct ``src`` (a :class:`~liteship.convert.sources.Source` of a Keras model).

    Returns:
        ``(a Source of the repaired model, {"equalize": report, "absorb_high_bias": report,
        "bias_correction": report})``.

    Raises:
        UsageError: The source is not a single-input Keras model, or calibration data is missing.
    """
    from liteship.convert.sources import Source

    flag = next(
        name
        for name, on in (
            ("equalize", equalize),
            ("absorb_high_bias", absorb_high_bias),
            ("bias_correction", bias_correction),
        )
        if on
    )
    if src.kind not in ("keras_model", "keras_file"):
        raise UsageError(
            f"`{flag}` rewrites a Keras model's weights (as `equalize` and `bias_correction` do); "
            f"{src.label!r} is a {src.kind}.",
            hint="Convert the .keras/.h5 file (or the keras.Model) instead of its SavedModel export.",
            parameter=flag,
        )
    model = src.obj
    if len(model.inputs) != 1:
        raise UsageError(
            f"`{flag}` supports single-input models; {src.label!r} has {len(model.inputs)}.",
            parameter=flag,
        )
    data = calibration_array(calib)
    fixes: dict[str, Any] = {}
    if equalize:
        from liteship.quantize.equalize import equalize as run_equalize

        model, eq = run_equalize(model, data[:CHECK_SAMPLES])
        fixes["equalize"] = eq.to_dict()
    if absorb_high_bias:  # after equalization, which makes some biases large (Nagel et al., 4.1.1)
        from liteship.quantize.absorb import absorb_high_biases

        model, hb = absorb_high_biases(model, data, data[:CHECK_SAMPLES])
        fixes["absorb_high_bias"] = hb.to_dict()
    if bias_correction:
        from liteship.quantize.bias import correct_bias

        model, bc = correct_bias(model, data)
        fixes["bias_correction"] = bc.to_dict()
    label = f"{src.label} ({' + '.join(fixes)})"
    return Source("keras_model", label, model, [la.name for la in model.layers]), fixes


def calibration_array(calib: Any) -> np.ndarray:
    """The calibration samples of a single-input model as one float32 batch."""
    if calib is None:
        raise UsageError(
            "`equalize` and `bias_correction` need the calibration data (`calibration`).",
            parameter="calibration",
        )
    rows = [s[0] if isinstance(s, (list, tuple)) else next(iter(s.values())) for s in calib.samples]
    return np.concatenate([np.asarray(r, dtype=np.float32) for r in rows], axis=0)


__all__ = ["repair_source", "calibration_array", "FLOAT_TOLERANCE"]
