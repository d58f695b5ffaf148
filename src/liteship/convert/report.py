"""ConversionReport: what ``liteship.convert`` produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liteship.model.normalize import SourceNormalization
from liteship.types import ReportMixin, TensorSpec


@dataclass(frozen=True)
class ConversionReport(ReportMixin):
    """The result of one conversion.

    Attributes:
        source: The model converted (path, or the in-memory model's name).
        source_kind: ``saved_model``, ``keras_file``, ``keras_model`` or ``tf_function``.
        method: The converter entry point that succeeded: ``from_saved_model``, ``from_keras_model``,
            ``export→from_saved_model`` (the Keras 3 fallback) or ``from_concrete_functions``.
        recipe: The quantization recipe (a key of ``RECIPES``).
        io_type: The model's input/output type.
        output: Where the .tflite was written, or ``None`` (bytes in ``model_bytes``).
        size_bytes: Size of the converted model.
        float32_size_bytes: Size of the plain float32 model: exact for recipe ``none`` and for a float
            ``.tflite`` source (the source itself, with the same record), else an estimate from the
            converted model's weights (see ``ops.float32_size_estimate``).
        ratio_to_float32: ``size_bytes / float32_size_bytes``.
        ops: Op histogram ``{name: count}``; Flex ops appear as ``Flex<Op>``.
        inputs: The converted model's inputs (dtype, shape, scale/zero-point).
        outputs: Its outputs.
        conversion_seconds: Wall time of the conversion (calibration included).
        calibration_samples: Samples used for calibration (0 when the recipe needs none).
        calibration_range: ``{input: {"min", "max"}}`` of the calibration data.
        preprocessing: The preprocessing declaration stored with the model.
        needs_flex: The model needs Select TensorFlow ops (the Flex delegate, a bigger runtime).
        needs_custom: The model needs custom op kernels registered at runtime.
        keep_float_layers: Ops/tensors kept in float on request.
        graph_fixes: ``{"equalize": EqualizationReport dict, "absorb_high_bias": AbsorptionReport dict,
            "bias_correction": …}`` when the source was repaired before conversion (each with the max
            abs difference of the float outputs).
        preprocessing_rule: The preprocessing rule applied to the calibration data and where it came from
            (``liteship.model.preprocessing``), e.g. ``"mean 127.5 std 127.5 from the model's TFLite
            metadata; data read as raw pixels 0–255"``.
        source_normalization: For a ``.tflite`` source, what loading normalized (a
            :class:`~liteship.model.normalize.SourceNormalization` dict: legacy op codes, signature added,
            associated files kept); ``None`` for other sources.
        warnings: Things worth knowing (fallbacks taken, runtime requirements).
        model_bytes: The converted model (not part of ``to_dict()``).
    """

    source: str
    source_kind: str
    method: str
    recipe: str
    io_type: str
    output: str | None
    size_bytes: int
    float32_size_bytes: int
    ratio_to_float32: float
    ops: dict[str, int]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    conversion_seconds: float
    calibration_samples: int
    calibration_range: dict[str, dict[str, float]]
    preprocessing: dict[str, Any]
    needs_flex: bool
    needs_custom: bool
    keep_float_layers: tuple[str, ...] = ()
    graph_fixes: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    source_normalization: dict[str, Any] | None = None
    preprocessing_rule: str | None = None
    model_bytes: bytes = field(default=b"", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.pop("model_bytes", None)
        return data

    def io_summary(self) -> str:
        """The model's I/O types as its tensors have them (``int8``, or ``int8 in, float32 out``): the
        tensors decide, not what was asked for, so the line never contradicts the ``input`` lines."""
        ins = sorted({s.dtype for s in self.inputs})
        outs = sorted({s.dtype for s in self.outputs})
        if not ins and not outs:
            return self.io_type
        if ins == outs:
            return "/".join(ins)
        return f"{'/'.join(ins) or '-'} in, {'/'.join(outs) or '-'} out"

    def summary_lines(self) -> list[str]:
        """A few readable lines (the CLI prints these)."""
        where = self.output or "(not written)"
        lines = [
            f"{self.source} → {where}",
            f"recipe {self.recipe}, I/O {self.io_summary()}, via {self.method}, {self.conversion_seconds:.1f} s",
            f"size {_kib(self.size_bytes)} ({self.ratio_to_float32:.0%} of float32 {_kib(self.float32_size_bytes)})",
        ]
        if self.source_normalization is not None:
            lines.append(f"source normalized: {normalization_summary(self.source_normalization)}")
        if self.calibration_samples:
            lines.append(f"calibrated on {self.calibration_samples} samples")
        if self.preprocessing_rule:
            lines.append(f"preprocessing: {self.preprocessing_rule}")
        for name, fix in (self.graph_fixes or {}).items():
            if name == "range_setting":
                lines.append(
                    f"range setting {fix.get('method')}: {fix.get('narrowed')} of {fix.get('tensors')} "
                    f"activation ranges narrowed ({fix.get('samples')} samples)"
                )
                continue
            if name == "absorb_high_bias":
                lines.append(_absorb_line(fix))
                continue
            if "summary" in fix:  # a fix on the float .tflite graph (liteship.quantize.graph_repair)
                lines.append(f"{name}: {fix['summary']}")
                continue
            detail = (
                f"{len(fix.get('pairs', []))} layer pair(s) equalized, {len(fix.get('skipped', []))} skipped"
                if name == "equalize"
                else f"{len(fix.get('layers', []))} layer(s) corrected"
            )
            lines.append(
                f"{name}: {detail}; float outputs moved by at most {fix.get('max_abs_diff') or 0:.2g}"
            )
        lines += [f"input  {s.describe()}" for s in self.inputs]
        lines += [f"output {s.describe()}" for s in self.outputs]
        lines.append("ops    " + ", ".join(f"{name}×{n}" for name, n in self.ops.items()))
        lines += [f"warning: {w}" for w in self.warnings]
        return lines


def normalization_summary(record: dict[str, Any]) -> str:
    """A :class:`~liteship.model.normalize.SourceNormalization` dict as one line (reports keep dicts)."""
    known = {k: v for k, v in record.items() if k in SourceNormalization.__dataclass_fields__}
    known["associated_files"] = tuple(known.get("associated_files") or ())
    return SourceNormalization(**known).summary()


def _absorb_line(fix: dict[str, Any]) -> str:
    pairs = fix.get("pairs", [])
    return (
        f"absorb_high_bias: {len(pairs)} layer pair(s) absorbed ({fix.get('method')}), "
        f"{len(fix.get('skipped', []))} skipped; bias moved {fix.get('total_bias_moved') or 0:.3g}; "
        f"float outputs moved by at most {fix.get('max_abs_diff') or 0:.2g}"
    )


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


__all__ = ["ConversionReport"]
