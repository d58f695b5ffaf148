"""The one preprocessing rule: what the model declares, unless told otherwise.

A model's TFLite metadata (``NormalizationOptions`` mean/std, color space) is its declared
preprocessing; a model liteship converted also carries liteship's own record (mean/std, size, channel
order). ``convert`` (calibration), ``validate`` (candidate and reference), ``run``, the pipeline and the
device agent all ask :func:`resolve_preprocessing` and print :meth:`PreprocessingRule.describe`:

1. an explicit override (``--mean/--std``, ``preprocessing`` in liteship.yaml) wins, field by field;
2. else liteship's record in the model;
3. else the model's TFLite metadata;
4. else none: data are fed as they are read.

:func:`check_data_fits` then catches data that do not fit the rule (floats already normalized fed to a
rule that expects raw pixels; raw pixels fed to a model that declares nothing) at the first command
that sees them. numpy and the flatbuffer bindings only: the device side uses this module too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship.data import raw_range
from liteship.errors import DataError
from liteship.model import flatbuffer as fbm
from liteship.model.metadata import normalization_from_metadata
from liteship.types import Preprocessing, ReportMixin

SOURCES = {
    "override": "given explicitly",
    "liteship": "from the model's liteship record",
    "metadata": "from the model's TFLite metadata",
    "none": "the model declares none",
}
PIXELS = "raw pixels 0–255"
_PIXEL_SCALE_STD = 2.0  # a rule whose std reaches this expects raw values (pixels), not values near ±1
_NORMALIZED_LIMIT = 1.5  # floats within ±this look normalized already


@dataclass(frozen=True)
class PreprocessingRule(ReportMixin):
    """The preprocessing a command applied, and where it came from.

    Attributes:
        preprocessing: The rule (identity when nothing is declared).
        source: ``"override"``, ``"liteship"``, ``"metadata"`` or ``"none"`` (see :data:`SOURCES`).
    """

    preprocessing: Preprocessing
    source: str

    @property
    def normalizes(self) -> bool:
        """Whether the rule changes values (mean/std other than 0/1)."""
        return not self.preprocessing.is_identity

    @property
    def expects_pixels(self) -> bool:
        """Whether the rule scales raw values (pixels 0–255) down: some std of 2 or more."""
        return self.normalizes and max(self.preprocessing.std) >= _PIXEL_SCALE_STD

    def describe(self, data: str | None = None) -> str:
        """E.g. ``"mean 127.5 std 127.5 from the model's TFLite metadata; data read as raw pixels 0–255"``."""
        pre = self.preprocessing
        if self.normalizes:
            mean = ",".join(f"{v:g}" for v in pre.mean)
            std = ",".join(f"{v:g}" for v in pre.std)
            text = f"mean {mean} std {std} {SOURCES.get(self.source, self.source)}"
        elif self.source == "none":
            text = "no normalization (the model declares none)"
        else:
            text = f"no normalization ({SOURCES.get(self.source, self.source)})"
        if pre.size is not None:
            text += f"; resized to {pre.size[0]}×{pre.size[1]}"
        if pre.channel_order != "rgb":
            text += f"; {pre.channel_order.upper()}"
        return text + (f"; data read as {data}" if data else "")

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["text"] = self.describe()
        return d


def declared_rule(model: str | Path | bytes | fbm.LoadedModel | None) -> PreprocessingRule:
    """What the model itself declares: liteship's record, else its TFLite metadata, else none.

    Raises:
        MetadataError, DataError: A declaration exists but cannot be used (e.g. a zero std): falling
            back to none silently would feed un-normalized inputs.
    """
    if model is None:
        return PreprocessingRule(Preprocessing(), "none")
    loaded = model if isinstance(model, fbm.LoadedModel) else fbm.load_model(model)
    recorded = fbm.read_liteship_info(loaded).get("preprocessing")
    if recorded:
        return PreprocessingRule(Preprocessing.from_dict(recorded), "liteship")

    pre = normalization_from_metadata(loaded)
    return (
        PreprocessingRule(pre, "metadata") if pre is not None else PreprocessingRule(Preprocessing(), "none")
    )


def resolve_preprocessing(
    model: str | Path | bytes | fbm.LoadedModel | None,
    override: Preprocessing | dict[str, Any] | None = None,
) -> PreprocessingRule:
    """The one preprocessing rule for ``model``: the override, else what the model declares.

    Args:
        model: The ``.tflite`` (path, bytes or loaded), or ``None`` for a source that is not one (a Keras
            model declares nothing).
        override: Fields given explicitly (``{"mean": 0, "std": 255}``, or a whole
            :class:`~liteship.types.Preprocessing`); they replace the declared ones. ``mean``/``std``
            given make the rule's source ``"override"``; only ``size``/``channel_order`` keep the declared
            normalization and its source.

    Returns:
        A :class:`PreprocessingRule`.
    """
    declared = declared_rule(model) if model is None or _is_tflite(model) else declared_rule(None)
    if override is None:
        return declared
    fields = dataclasses.asdict(override) if isinstance(override, Preprocessing) else dict(override)
    if not fields:
        return declared
    pre = dataclasses.replace(declared.preprocessing, **fields)
    normalization_given = "mean" in fields or "std" in fields
    return PreprocessingRule(pre, "override" if normalization_given else declared.source)


def _is_tflite(model: Any) -> bool:
    if isinstance(model, (bytes, bytearray, fbm.LoadedModel)):
        return True
    return Path(model).is_file() and Path(model).suffix.lower() == ".tflite"


def check_data_fits(
    rule: PreprocessingRule, kind: str, lo: float, hi: float, *, where: str, float_input: bool = True
) -> str | None:
    """Check that data read as ``kind`` with raw values in ``[lo, hi]`` fit ``rule``.

    Args:
        rule: The rule about to be applied.
        kind: How the data were read, e.g. :data:`PIXELS` or ``"float32 array"``.
        lo: The smallest raw value.
        hi: The largest raw value.
        where: The data's name, for messages.
        float_input: Whether the model's input is float (a uint8 input takes raw pixels as they are).

    Returns:
        A warning, or ``None`` when the data fit.

    Raises:
        DataError: Already-normalized floats fed to a rule that expects raw pixels: normalizing them
            again squeezes every value to about ``-mean/std``.
    """
    looks_normalized = kind != PIXELS and lo >= -_NORMALIZED_LIMIT and hi <= _NORMALIZED_LIMIT and hi > lo
    if rule.expects_pixels and looks_normalized:
        raise DataError(
            f"{where} holds values in [{lo:.3g}, {hi:.3g}], which look normalized already, but the "
            f"preprocessing rule ({rule.describe()}) expects raw values such as pixels 0–255: normalizing "
            "them again would feed the model values near "
            f"{-rule.preprocessing.mean[0] / rule.preprocessing.std[0]:.3g}.",
            hint="Give the raw data (pixels 0–255), or override the rule with mean 0 and std 1 "
            "(--mean 0 --std 1, or preprocessing in liteship.yaml).",
        )
    if float_input and rule.source == "none" and hi > _PIXEL_SCALE_STD * 50:
        return (
            f"the model declares no preprocessing, so {where} ({kind}, values up to {hi:.3g}) is fed as it "
            "is read; if the model expects normalized inputs (x/255, or x/127.5 − 1), give mean/std "
            "(--mean/--std, or preprocessing in liteship.yaml)."
        )
    return None


def check_dataset_fits(
    rule: PreprocessingRule, data: Any, *, where: str, float_input: bool = True
) -> tuple[str | None, str | None]:
    """:func:`check_data_fits` on a dataset as :func:`liteship.data.load_dataset` takes it.

    Returns:
        ``(how the data were read, warning)``; both ``None`` when the data cannot be looked at cheaply
        (a callable).

    Raises:
        DataError: See :func:`check_data_fits`.
    """
    seen = raw_range(data)
    if seen is None:
        return None, None
    kind, lo, hi = seen
    read = kind if kind == PIXELS else f"{kind} in [{lo:.3g}, {hi:.3g}]"
    return read, check_data_fits(rule, kind, lo, hi, where=where, float_input=float_input)


__all__ = [
    "check_dataset_fits",
    "PIXELS",
    "SOURCES",
    "PreprocessingRule",
    "check_data_fits",
    "declared_rule",
    "resolve_preprocessing",
]
