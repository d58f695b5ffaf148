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

from liteship.model.flatbuffer import load_model, op_name, schema, tensor_name
from liteship.quantize.denylist import quantize_calibrated
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
        from liteship.convert.converter import calibrated_model  # convert imports quantize

        self.calibrated = calibrated_model(source, quantize=quantize, io_type=io_type, **calibration)
        self._ops: list[QuantizableOp] | None = None

    @property
    def io_type(self) -> str:
        return self.calibrated.io_type

    def ops(self) -> list[QuantizableOp]:
        if self._ops is None:
            self._ops = quantizable_ops(self.build(()), calibrated=self.calibrated.model)
        return list(self._ops)

    def input_ops(self) -> list[str]:
        """The candidate ops that read a model input. With float32 model I/O, keeping them in float is what
        lets the input reach the model unrounded (the repair puts them first when the int8 input grid
        alone fails the gates)."""
        loaded = load_model(self.calibrated.model)
        sg = loaded.model.subgraphs[0]
        inputs = {int(i) for i in sg.inputs}
        reading = {
            tensor_name(sg.tensors[op.outputs[0]])
            for op in sg.operators or []
            if op.outputs and inputs & {int(i) for i in op.inputs if i >= 0}
        }
        return [o.name for o in self.ops() if o.name in reading]

    def build(self, keep_float: Sequence[str]) -> bytes:
        return quantize_calibrated(self.calibrated.model, io_type=self.io_type, keep_float_nodes=keep_float)


def quantizable_ops(model: bytes, calibrated: bytes | None = None) -> list[QuantizableOp]:
    """The ops of an integer model worth keeping in float: compute ops with an integer output, named by
    their output tensor (the name the quantizer's denylist takes).

    Args:
        model: The fully quantized model.
        calibrated: The calibrate-only model it was quantized from. The denylist matches *its* names,
            which differ for an op that produces a model output: the quantizer gives the original name to
            the DEQUANTIZE it appends and renames the op's own tensor (MobileNetV2's softmax output
            ``StatefulPartitionedCall_1:0`` becomes ``…:01``), so a denylist of the quantized model's name
            silently keeps nothing in float. With ``calibrated``, the compute ops are paired in graph order
            and its names are used.
    """
    type_names = {v: k.lower() for k, v in vars(_schema().TensorType).items() if not k.startswith("_")}
    compute = _compute_ops(model)
    names = _compute_ops(calibrated) if calibrated is not None else None
    if names is not None and [k for k, _, _ in names] != [k for k, _, _ in compute]:
        names = None  # the graphs do not pair up op for op: keep the quantized model's names
    return [
        QuantizableOp(name=names[i][1] if names is not None else name, op=kind)
        for i, (kind, name, out_type) in enumerate(compute)
        if kind not in NOT_WORTH_FLOAT and type_names.get(out_type) in INTEGER_TYPES
    ]


def _compute_ops(model: bytes) -> list[tuple[str, str, int | None]]:
    """``(op type, first output's name, its tensor type)`` of every op but QUANTIZE/DEQUANTIZE, in graph
    order (ops without outputs are left out)."""
    loaded = load_model(model)
    sg = loaded.model.subgraphs[0]
    out = []
    for op in sg.operators or []:
        kind = op_name(loaded.model, op.opcodeIndex)
        if kind in ("QUANTIZE", "DEQUANTIZE") or not op.outputs:
            continue
        t = sg.tensors[op.outputs[0]]
        out.append((kind, tensor_name(t), t.type))
    return out


def _schema() -> Any:
    return schema


__all__ = ["DenylistBackend", "quantizable_ops"]
