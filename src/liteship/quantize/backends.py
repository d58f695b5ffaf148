"""``FloatOpsBackend`` implementations.

:class:`DenylistBackend` — TFLite's converter: calibrate once, then each "keep these ops float" model is
one MLIR quantizer pass with a node denylist (milliseconds to a few seconds). It keeps the requested
model I/O type (int8/uint8/float32).

A second backend fits the same two methods: ai-edge-quantizer's selective quantization for float
``.tflite`` sources (a recipe that leaves the named ops unquantized), once that source kind lands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from liteship.quantize.search import QuantizableOp

# ops that only move or reshape int8 data: keeping them in float changes nothing worth measuring
NOT_WORTH_FLOAT = frozenset(
    {
        "QUANTIZE",
        "DEQUANTIZE",
        "RESHAPE",
        "SQUEEZE",
        "EXPAND_DIMS",
        "SHAPE",
        "STRIDED_SLICE",
        "PACK",
        "UNPACK",
        "TRANSPOSE",
        "GATHER",
        "MAX_POOL_2D",
        "PAD",
        "SLICE",
        "SPLIT",
    }
)
INTEGER_TYPES = ("int8", "uint8", "int16")


class DenylistBackend:
    """Builds integer models with chosen ops in float through TFLite's MLIR quantizer.

    Args:
        source: The TF/Keras source (what :func:`liteship.convert.convert` takes).
        quantize: ``int8`` or ``int8-fallback``. Defaults to ``int8``.
        io_type: Model I/O type; the recipe's default when ``None``.
        **calibration: ``calibration``, ``calibration_samples``, ``preprocessing``, ``equalize``,
            ``bias_correction`` as for ``convert``.

    Example:
        >>> backend = DenylistBackend("model.keras", calibration="calib.npy")     # doctest: +SKIP
        >>> model_bytes = backend.build([backend.ops()[0].name])                  # doctest: +SKIP
    """

    def __init__(
        self, source: Any, *, quantize: str = "int8", io_type: str | None = None, **calibration: Any
    ):
        from liteship.convert.converter import calibrated_model

        self.calibrated = calibrated_model(source, quantize=quantize, io_type=io_type, **calibration)
        self._ops: list[QuantizableOp] | None = None

    @property
    def io_type(self) -> str:
        return self.calibrated.io_type

    def ops(self) -> list[QuantizableOp]:
        if self._ops is None:
            self._ops = quantizable_ops(self.build(()))
        return list(self._ops)

    def build(self, keep_float: Sequence[str]) -> bytes:
        from liteship.quantize.denylist import quantize_calibrated

        return quantize_calibrated(self.calibrated.model, io_type=self.io_type, keep_float_nodes=keep_float)


def quantizable_ops(model: bytes) -> list[QuantizableOp]:
    """The ops of an integer model worth keeping in float: compute ops with an integer output, named by
    their output tensor (the name the quantizer's denylist takes)."""
    from liteship.convert.ops import op_name
    from liteship.model.flatbuffer import load_model

    loaded = load_model(model)
    sg = loaded.model.subgraphs[0]
    type_names = {v: k.lower() for k, v in vars(_schema().TensorType).items() if not k.startswith("_")}
    out = []
    for op in sg.operators or []:
        kind = op_name(loaded.model, op.opcodeIndex)
        if kind in NOT_WORTH_FLOAT or not op.outputs:
            continue
        tensor = sg.tensors[op.outputs[0]]
        if type_names.get(tensor.type) not in INTEGER_TYPES:
            continue
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        out.append(QuantizableOp(name=name, op=kind))
    return out


def _schema() -> Any:
    from liteship.model.flatbuffer import schema

    return schema


__all__ = ["DenylistBackend", "quantizable_ops"]
