"""A copy of a quantized model that takes float inputs and quantizes them with LiteRT's own QUANTIZE op.

Why (issue 22 (14)): a runner fed floats for an int8 input must quantize 150k values per MobileNet
frame. numpy needs several passes over the tensor for it (``liteship.runtime.quant.Quantizer``, ~60 µs
plus the cache misses it leaves the next inference); LiteRT's QUANTIZE kernel (XNNPACK's, on CPU) does
it in one vectorized pass inside ``invoke``. The copy is what TensorFlow's converter writes for a model
converted with float I/O: a float32 input tensor, one QUANTIZE op into the original input tensor.

The kernel rounds half to even (XNNPACK and LiteRT's optimized kernel alike, measured), where
:func:`liteship.runtime.quant.quantize` rounds half away from zero as TFLite's reference kernel does:
the two differ only on values exactly halfway between two steps, by one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liteship.model.flatbuffer import associated_files, attach_files, has_data, load_model, pack_model, schema

# QUANTIZE's version by output type (TFLite's op versioning: 1 uint8, 2 int8)
_VERSIONS = {schema.TensorType.UINT8: 1, schema.TensorType.INT8: 2} if schema else {}
_RANGES = {schema.TensorType.UINT8: (0, 255), schema.TensorType.INT8: (-128, 127)} if schema else {}
SUFFIX = b"/liteship_quantized"  # the name the original (now internal) input tensor takes


@dataclass(frozen=True)
class FloatInputCopy:
    """The rewritten model and what changed.

    Attributes:
        data: The model's bytes with float inputs.
        inputs: The main graph's input tensor indices that now take floats (the new tensors; each keeps
            its original's name, shape and shape signature).
        quantization: For each of ``inputs``: the original tensor's numpy dtype name, scale and zero
            point (what the QUANTIZE op writes).
        added_ops: The QUANTIZE ops added, at the head of the main graph's operator list.
    """

    data: bytes
    inputs: tuple[int, ...]
    quantization: tuple[tuple[str, float, int], ...]
    added_ops: int


def float_input_copy(data: bytes) -> FloatInputCopy | None:
    """The model with each per-tensor int8/uint8 input of its main graph fed as float32 and quantized by
    a QUANTIZE op (with the input's own scale and zero point). Numerics downstream are untouched.

    Inputs that are not such a tensor (float, int16, per-channel, constant, or also a graph output) are
    left as they are.

    Returns:
        The copy, or ``None`` when no input qualifies.
    """
    model = load_model(data).model
    if not model.subgraphs:
        return None
    sg = model.subgraphs[0]
    outputs = {int(i) for i in (sg.outputs if sg.outputs is not None else [])}
    chosen = [
        int(i) for i in (sg.inputs if sg.inputs is not None else []) if _qualifies(model, sg, int(i), outputs)
    ]
    if not chosen:
        return None
    ops, mapping = [], {}
    for index in chosen:
        original = sg.tensors[index]
        buf = schema.BufferT()
        model.buffers.append(buf)
        t = schema.TensorT()
        t.shape = [int(d) for d in original.shape] if original.shape is not None else []
        if original.shapeSignature is not None:
            t.shapeSignature = [int(d) for d in original.shapeSignature]
        t.type, t.buffer, t.name = schema.TensorType.FLOAT32, len(model.buffers) - 1, original.name
        original.name = (original.name or b"input") + SUFFIX
        sg.tensors.append(t)
        mapping[index] = len(sg.tensors) - 1
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.QUANTIZE
        code.version = _VERSIONS[original.type]
        model.operatorCodes.append(code)
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes) - 1, [mapping[index]], [index]
        op.builtinOptionsType = schema.BuiltinOptions.QuantizeOptions
        op.builtinOptions = schema.QuantizeOptionsT()
        ops.append(op)
    sg.inputs = [mapping.get(int(i), int(i)) for i in sg.inputs]
    sg.operators = ops + list(sg.operators or [])
    for sig in model.signatureDefs or []:
        if int(sig.subgraphIndex or 0) == 0:
            for entry in sig.inputs or []:
                entry.tensorIndex = mapping.get(int(entry.tensorIndex), int(entry.tensorIndex))
    quantization = tuple(_quantization(sg.tensors[i]) for i in chosen)
    packed = attach_files(pack_model(model, data), associated_files(data))
    return FloatInputCopy(packed, tuple(mapping[i] for i in chosen), quantization, len(ops))


def _quantization(t: Any) -> tuple[str, float, int]:
    name = "int8" if t.type == schema.TensorType.INT8 else "uint8"
    return name, float(t.quantization.scale[0]), int(t.quantization.zeroPoint[0])


def _qualifies(model: Any, sg: Any, index: int, outputs: set[int]) -> bool:
    if not 0 <= index < len(sg.tensors or []) or index in outputs:
        return False
    t = sg.tensors[index]
    if t.type not in _VERSIONS or (t.buffer and has_data(model.buffers[t.buffer])):
        return False
    q = t.quantization
    if q is None or q.scale is None or q.zeroPoint is None or len(q.scale) != 1 or len(q.zeroPoint) != 1:
        return False
    scale, zero_point = float(q.scale[0]), int(q.zeroPoint[0])
    low, high = _RANGES[t.type]
    return 0.0 < scale < float("inf") and low <= zero_point <= high


__all__ = ["FloatInputCopy", "float_input_copy"]
