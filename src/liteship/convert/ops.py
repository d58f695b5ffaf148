"""Facts about ops: which ones a failed conversion could not express (and which layers made them),
and what a converted model holds (op histogram, I/O, an estimate of its float32 size). No TensorFlow.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteship.model.flatbuffer import LoadedModel, op_name, schema, tensor_name
from liteship.types import TensorSpec

_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
# Tensor types whose weights would be float32 in the plain conversion.
_FLOATABLE = {"float32", "float16", "int8", "uint8", "int16", "int4", "bfloat16"}

_OP_RE = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_LIST_RE = re.compile(r"^(Flex|Custom) ops: (.+)$", re.MULTILINE)
_LOC_RE = re.compile(r'fused\["(\w+):", "([^"@]+)')


@dataclass
class UnsupportedOps:
    """What a ConverterError says about ops without a builtin kernel.

    Attributes:
        flex: Ops that Select TensorFlow ops (Flex) can run.
        custom: Ops that only a custom op kernel can run (not in the Flex allowlist).
        layers: ``{op: [layer or source location, …]}`` where TensorFlow's location info tells.
    """

    flex: list[str] = field(default_factory=list)
    custom: list[str] = field(default_factory=list)
    layers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ops(self) -> list[str]:
        return sorted(set(self.flex) | set(self.custom))


def parse_unsupported_ops(error: BaseException, layer_names: Sequence[str] = ()) -> UnsupportedOps | None:
    """Read a ``ConverterError``; ``None`` when it is not about unsupported ops.

    Uses the structured ``error.errors`` (ConverterErrorData: op name, error code, location) and falls
    back to the message text ("Flex ops: …", "Custom ops: …", ``loc(fused["Op:", "scope/…"])``).
    """
    found = UnsupportedOps()
    for data in getattr(error, "errors", None) or []:
        message = getattr(data, "error_message", "")
        op = getattr(getattr(data, "operator", None), "name", "").removeprefix("tf.")
        if not op or "ERROR_NEEDS_" not in message:
            continue
        (found.flex if "ERROR_NEEDS_FLEX_OPS" in message else found.custom).append(op)
        where = _location(data, layer_names)
        if where:
            found.layers.setdefault(op, []).append(where)
    text = str(error)
    if not found.ops:
        for kind, names in _LIST_RE.findall(text):
            target = found.flex if kind == "Flex" else found.custom
            target += [n.strip() for n in names.split(",") if n.strip()]
        if not found.ops:
            found.custom += _OP_RE.findall(text)
        for op, scope in _LOC_RE.findall(text):
            if op in found.ops:
                found.layers.setdefault(op, []).append(_layer_of(scope, layer_names))
    if not found.ops:
        return None
    found.flex, found.custom = sorted(set(found.flex)), sorted(set(found.custom) - set(found.flex))
    found.layers = {op: sorted(set(where)) for op, where in found.layers.items()}
    return found


def _location(data: Any, layer_names: Sequence[str]) -> str | None:
    calls = list(getattr(data.location, "call", []))
    if not calls:
        return None
    first = calls[0]
    if first.name and "/" in first.name:
        return _layer_of(first.name.split("@")[0], layer_names)
    src = first.source
    if src.filename:  # a tf.function: the user's own source line is the most useful
        user = [c.source for c in calls if c.source.filename and "site-packages" not in c.source.filename]
        src = (user or [src])[0]
        return f"{src.filename}:{src.line}"
    return first.name or None


def _layer_of(scope: str, layer_names: Sequence[str]) -> str:
    """``sequential_1/erf_layer_1/Erf`` → ``erf_layer`` when that is a known layer, else the scope."""
    parts = scope.split("/")[:-1] or [scope]
    known = set(layer_names)
    for part in reversed(parts):
        for candidate in (part, re.sub(r"_\d+$", "", part)):
            if candidate in known:
                return candidate
    return "/".join(parts)


def op_histogram(loaded: LoadedModel) -> dict[str, int]:
    """``{op name: count}`` over every subgraph, most frequent first."""
    counts: Counter[str] = Counter()
    for sg in loaded.model.subgraphs:
        for op in sg.operators or []:
            counts[op_name(loaded.model, op.opcodeIndex)] += 1
    return dict(counts.most_common())


def io_specs(loaded: LoadedModel) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of the main subgraph, with per-tensor scale/zero-point when quantized."""
    sg = loaded.model.subgraphs[0]

    def spec(index: int) -> TensorSpec:
        t = sg.tensors[index]
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else None
        zp = int(q.zeroPoint[0]) if scale is not None and q.zeroPoint is not None else None
        shape = t.shapeSignature if t.shapeSignature is not None else t.shape
        return TensorSpec(
            tensor_name(t),
            tuple(int(d) for d in (shape if shape is not None else ())),
            _dtype(t.type),
            scale,
            zp,
        )

    return [spec(i) for i in sg.inputs], [spec(i) for i in sg.outputs]


def _dtype(tensor_type: int) -> str:
    return _TYPE_NAMES.get(tensor_type, str(tensor_type))


def float32_size_estimate(loaded: LoadedModel) -> int:
    """Bytes the same model would take as a plain float32 conversion, without converting it again.

    Every constant tensor of a float type, or quantized (int8 weights, int32/int64 biases), counts 4
    bytes per element; other constants (shapes, indices) keep their size; quantization parameters are dropped; the rest of the file (graph
    structure, metadata) is counted once. Weights shared by several tensors count once. Within a few percent of the real
    float conversion for the usual conv/dense models; tensors added by quantization (e.g. float16's
    DEQUANTIZE copies) are counted as their float32 originals.
    """
    model = loaded.model
    stored = floated = 0
    seen: set[int] = set()
    for sg in model.subgraphs:
        for t in sg.tensors or []:
            stored += _quantization_bytes(t.quantization)
            if t.buffer in seen or t.buffer <= 0 or t.buffer >= len(model.buffers):
                continue
            data = model.buffers[t.buffer].data
            size = len(data) if data is not None else int(model.buffers[t.buffer].size or 0)
            if not size:
                continue
            seen.add(t.buffer)
            stored += size
            dtype = _dtype(t.type)
            count = int(np.prod(t.shape)) if t.shape is not None and len(t.shape) else 1
            quantized = t.quantization is not None and t.quantization.scale is not None
            floated += count * 4 if dtype in _FLOATABLE or quantized else size
    return max(len(loaded.data) - stored + floated, 1)


def _quantization_bytes(q: Any) -> int:
    """Bytes of a tensor's quantization parameters (float scales, int64 zero points, min/max)."""
    if q is None:
        return 0
    sizes = {"scale": 4, "zeroPoint": 8, "min": 4, "max": 4}
    return sum(len(getattr(q, k)) * n for k, n in sizes.items() if getattr(q, k) is not None)


__all__ = [
    "UnsupportedOps",
    "parse_unsupported_ops",
    "op_histogram",
    "op_name",
    "io_specs",
    "float32_size_estimate",
]
