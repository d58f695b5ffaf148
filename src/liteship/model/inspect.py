"""Describe a .tflite without TensorFlow: I/O, signatures, ops, weights, quantization, metadata, targets.

Everything is read from the flatbuffer that :func:`liteship.model.flatbuffer.load_model` has verified,
so any file — ours or another tool's — is described without handing bytes to an interpreter.

    >>> from liteship.model import inspect_model
    >>> report = inspect_model("model.tflite", targets=["edgetpu"])     # doctest: +SKIP
    >>> report.kind, report.targets[0].verdict                          # doctest: +SKIP
    ('full-int8', 'ok')
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship.errors import ModelError
from liteship.model import flatbuffer as fb
from liteship.model.normalize import legacy_parts
from liteship.model.targets import (
    ModelFacts,
    OpUse,
    TargetVerdict,
    check_target,
    probe_target,
    resolve_targets,
)
from liteship.types import ReportMixin, TensorSpec

_schema = fb.schema
_TYPE_NAMES = {v: k.lower() for k, v in vars(_schema.TensorType).items() if not k.startswith("_")}
_CUSTOM = _schema.BuiltinOperator.CUSTOM
_FLOATS = {"float32", "float16"}
_BYTES8 = {"int8", "uint8"}

# Well-known metadata entry names and how to show them.
_METADATA_LABELS = {
    "TFLITE_METADATA": "TFLite Metadata",
    "min_runtime_version": "min_runtime_version",
    "CONVERSION_METADATA": "conversion metadata (converter options)",
    fb.LITESHIP_ENTRY: "liteship record (preprocessing, recipe)",
}


@dataclass(frozen=True)
class SubgraphInfo(ReportMixin):
    """Size of one subgraph."""

    index: int
    name: str
    tensors: int
    operators: int
    inputs: int
    outputs: int


@dataclass(frozen=True)
class SignatureInfo(ReportMixin):
    """One signature: its key, subgraph, and ``{signature name: tensor name}`` for inputs and outputs."""

    key: str
    subgraph: int
    inputs: dict[str, str]
    outputs: dict[str, str]


@dataclass(frozen=True)
class QuantizationSummary(ReportMixin):
    """How the model is quantized.

    Attributes:
        per_tensor: Number of tensors with one scale/zero-point.
        per_channel: Number of tensors with one scale per channel.
        per_channel_tensors: Names of the per-channel tensors (usually conv/depthwise weights).
        weight_dtypes: ``{dtype: tensor count}`` of constant weights stored below float32
            (``int8``, ``uint8``, ``int16``, ``float16``, …).
        io: ``{I/O tensor name: "none" | "per-tensor" | "per-channel"}``.
    """

    per_tensor: int = 0
    per_channel: int = 0
    per_channel_tensors: tuple[str, ...] = ()
    weight_dtypes: dict[str, int] = field(default_factory=dict)
    io: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetadataEntry(ReportMixin):
    """A ``Model.metadata`` entry: its name, what it is, its size."""

    name: str
    label: str
    size: int


@dataclass(frozen=True)
class InspectReport(ReportMixin):
    """What a .tflite contains and where it can run.

    Attributes:
        path: The file, or ``None`` for a buffer.
        file_bytes: File size, associated files included.
        schema_version: TFLite schema version of the flatbuffer.
        description: The converter's description string (``"MLIR Converted."``).
        kind: ``float32``, ``dynamic-range``, ``full-int8``, ``float16``, ``int16x8`` or ``mixed``.
        inputs: Main subgraph inputs (``shape`` from the shape signature, ``-1`` for dynamic).
        outputs: Main subgraph outputs.
        signatures: Signature defs.
        subgraphs: Per-subgraph tensor and operator counts.
        tensor_count: Tensors over all subgraphs.
        parameter_count: Elements of constant tensors that have data (each buffer once).
        weight_bytes: ``{dtype: bytes}`` of constant tensor data.
        builtin_ops: ``{op: count}`` of builtin operators.
        custom_ops: ``{op: count}`` of custom operators (Flex excluded).
        flex_ops: ``{op: count}`` of Select TensorFlow (Flex) operators.
        quantization: Per-tensor vs per-channel counts, low-precision weights, I/O quantization.
        metadata: ``Model.metadata`` entries present.
        associated_files: ``{name: bytes}`` of files zipped onto the model (e.g. ``labels.txt``).
        min_runtime_version: The converter's ``min_runtime_version`` entry, when recorded.
        targets: Deployability verdicts for the requested targets.
        warnings: Problems that did not stop the inspection.
        legacy: What liteship normalizes when it loads the file to convert it (legacy op codes, a
            missing signature; :func:`liteship.model.normalize.legacy_parts`), one line each; ``()`` for
            a current file.
    """

    path: str | None
    file_bytes: int
    schema_version: int
    description: str
    kind: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    signatures: tuple[SignatureInfo, ...]
    subgraphs: tuple[SubgraphInfo, ...]
    tensor_count: int
    parameter_count: int
    weight_bytes: dict[str, int]
    builtin_ops: dict[str, int]
    custom_ops: dict[str, int]
    flex_ops: dict[str, int]
    quantization: QuantizationSummary
    metadata: tuple[MetadataEntry, ...]
    associated_files: dict[str, int]
    min_runtime_version: str | None
    targets: tuple[TargetVerdict, ...] = ()
    warnings: tuple[str, ...] = ()
    legacy: tuple[str, ...] = ()

    @property
    def ops(self) -> dict[str, int]:
        """Every op with its count, most frequent first."""
        merged = Counter({**self.builtin_ops, **self.custom_ops, **self.flex_ops})
        return dict(merged.most_common())

    @property
    def needs_flex(self) -> bool:
        return bool(self.flex_ops)

    def target(self, name: str) -> TargetVerdict:
        """The verdict for target ``name`` (it must have been requested)."""
        for v in self.targets:
            if v.target == name:
                return v
        raise KeyError(name)


def inspect_model(
    source: str | Path | bytes | fb.LoadedModel,
    targets: Iterable[str] | None = None,
    *,
    probe: bool = False,
) -> InspectReport:
    """Describe a .tflite model, reading the flatbuffer only (no TensorFlow, no interpreter).

    Args:
        source: Path to a ``.tflite`` file, its bytes, or an already loaded model.
        targets: Targets to judge (``cpu``, ``xnnpack``, ``gpu``, ``edgetpu``, ``micro``).
            Defaults to all of them.
        probe: For targets LiteRT can compile for here (``gpu``, ``cpu``), replace the rule-table
            verdict with what the runtime does: compile with the real accelerator and report what ran
            there (each verdict's ``basis`` says ``"probed"`` or ``"rules"``). Defaults to ``False``:
            the flatbuffer only.

    Returns:
        An :class:`InspectReport`.

    Raises:
        ModelError: The file is missing, not a TFLite model, truncated or corrupted.
        UsageError: An unknown target name.
    """
    names = resolve_targets(targets)
    if isinstance(source, (str, Path)):
        _refuse_keras(Path(source))
    loaded = source if isinstance(source, fb.LoadedModel) else fb.load_model(source)
    try:
        report = _inspect(loaded, names)
    except (IndexError, KeyError, TypeError, ValueError, AttributeError, OverflowError, struct.error) as e:
        # The flatbuffer verified, but its contents contradict each other (e.g. a bit flip in a shape).
        where = repr(loaded.path) if loaded.path else "the model buffer"
        raise ModelError(
            f"{where} passed verification but its contents are inconsistent ({type(e).__name__}: {e}).",
            hint=fb.HINT,
        ) from e
    if not probe:
        return report

    probed = tuple(probe_target(loaded.data, v) for v in report.targets)
    return dataclasses.replace(report, targets=probed)


def _refuse_keras(path: Path) -> None:
    """A ``.keras`` file is a zip archive too: say it is a Keras model, not a liteship package."""
    if not path.is_file():
        return
    with path.open("rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return
    keras = path.suffix.lower() == ".keras" or fb.zip_kind(path.read_bytes()) == "keras"
    if keras:
        raise ModelError(
            f"{str(path)!r} is a Keras model (a .keras zip archive), not a .tflite.",
            hint=f"Convert it first: `liteship convert {path} -o model.tflite`, then inspect model.tflite.",
        )


def _inspect(loaded: fb.LoadedModel, target_names: Sequence[str]) -> InspectReport:
    model, data = loaded.model, loaded.data
    subgraphs = list(model.subgraphs)
    main = subgraphs[0]
    const = _constant_buffers(model)
    warnings: list[str] = []

    ops = [_op_use(model, sg, op, const) for sg in subgraphs for op in sg.operators or []]
    hist: dict[str, Counter[str]] = {"builtin": Counter(), "custom": Counter(), "flex": Counter()}
    for op in ops:
        hist[op.category][op.name] += 1

    params, weight_bytes, quant = _weights_and_quantization(model, subgraphs, const)
    io_q = {_name(main.tensors[i]): _quant_granularity(main.tensors[i]) for i in _io(main)}
    quant = QuantizationSummary(**{**quant.__dict__, "io": io_q})
    kind = _kind(subgraphs, const, ops)
    dynamic, dynamic_batch = _dynamic(subgraphs)
    facts = ModelFacts(kind, len(subgraphs), dynamic, tuple(ops), dynamic_batch)

    entries = fb.metadata_entries(model, data)
    runtime = entries.get("min_runtime_version")
    min_runtime = runtime.rstrip(b"\0").decode("ascii", "replace") if runtime else None
    files: dict[str, int] = {}
    try:
        files = {n: len(b) for n, b in fb.associated_files(data).items()}
    except ModelError as e:  # the model still runs; only its zipped extras (labels, vocab) are lost
        warnings.append(str(e))

    return InspectReport(
        legacy=tuple(legacy_parts(loaded).describe(done=False)),
        path=loaded.path,
        file_bytes=len(data),
        schema_version=int(model.version),
        description=_text(model.description),
        kind=kind,
        inputs=tuple(_spec(main.tensors[i]) for i in _ints(main.inputs)),
        outputs=tuple(_spec(main.tensors[i]) for i in _ints(main.outputs)),
        signatures=tuple(_signatures(model)),
        subgraphs=tuple(
            SubgraphInfo(
                i,
                _text(sg.name),
                len(sg.tensors or []),
                len(sg.operators or []),
                len(_ints(sg.inputs)),
                len(_ints(sg.outputs)),
            )
            for i, sg in enumerate(subgraphs)
        ),
        tensor_count=sum(len(sg.tensors or []) for sg in subgraphs),
        parameter_count=params,
        weight_bytes=weight_bytes,
        builtin_ops=dict(hist["builtin"].most_common()),
        custom_ops=dict(hist["custom"].most_common()),
        flex_ops=dict(hist["flex"].most_common()),
        quantization=quant,
        metadata=tuple(
            MetadataEntry(n, _METADATA_LABELS.get(n, "other"), len(b)) for n, b in entries.items()
        ),
        associated_files=files,
        min_runtime_version=min_runtime,
        targets=tuple(check_target(facts, t) for t in target_names),
        warnings=tuple(warnings),
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _name(tensor: Any) -> str:
    return _text(tensor.name)


def _dtype(tensor: Any) -> str:
    return _TYPE_NAMES.get(tensor.type, f"type{tensor.type}")


def _ints(values: Any) -> list[int]:
    """A flatbuffer int vector (numpy array, list or None) as a list."""
    return [] if values is None else [int(v) for v in values]


def _io(sg: Any) -> list[int]:
    return _ints(sg.inputs) + _ints(sg.outputs)


def _constant_buffers(model: Any) -> set[int]:
    """Indices of buffers that hold data (buffer 0 is the empty sentinel every converter writes)."""
    return {i for i, b in enumerate(model.buffers or []) if fb.has_data(b)}


def _is_const(tensor: Any, const: set[int]) -> bool:
    return tensor.buffer in const and not tensor.isVariable


def _shape(tensor: Any) -> tuple[int, ...]:
    shape = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
    return tuple(int(d) for d in (shape if shape is not None else ()))


def _scales(tensor: Any) -> list[float]:
    q = tensor.quantization
    return [] if q is None or q.scale is None else [float(s) for s in q.scale]


def _quant_granularity(tensor: Any) -> str:
    n = len(_scales(tensor))
    return "none" if n == 0 else "per-tensor" if n == 1 else "per-channel"


def _spec(tensor: Any) -> TensorSpec:
    scales = _scales(tensor)
    q = tensor.quantization
    zps = [] if q is None or q.zeroPoint is None else [int(z) for z in q.zeroPoint]
    scale = scales[0] if len(scales) == 1 else None
    zero_point = zps[0] if scale is not None and zps else (0 if scale is not None else None)
    return TensorSpec(_name(tensor), _shape(tensor), _dtype(tensor), scale, zero_point)


def _op_use(model: Any, sg: Any, op: Any, const: set[int]) -> OpUse:
    code = model.operatorCodes[op.opcodeIndex]
    if fb.builtin_code(code) == _CUSTOM:
        name = _text(code.customCode) or "(unnamed custom op)"
        category = "flex" if name.startswith("Flex") else "custom"
    else:
        name, category = fb.op_name(model, op.opcodeIndex), "builtin"
    ins = [sg.tensors[i] for i in _ints(op.inputs) if i >= 0]  # -1 marks an omitted optional input
    outs = [sg.tensors[i] for i in _ints(op.outputs) if i >= 0]
    runtime = frozenset(_dtype(t) for t in ins + outs if not _is_const(t, const))
    fp16 = name == "DEQUANTIZE" and bool(ins) and _dtype(ins[0]) == "float16" and _is_const(ins[0], const)
    return OpUse(name, category, runtime, fp16)


def _weights_and_quantization(
    model: Any, subgraphs: list[Any], const: set[int]
) -> tuple[int, dict[str, int], QuantizationSummary]:
    params = 0
    weight_bytes: Counter[str] = Counter()
    low_precision: Counter[str] = Counter()
    seen: set[int] = set()
    per_tensor = per_channel = 0
    per_channel_names: list[str] = []
    for sg in subgraphs:
        for t in sg.tensors or []:
            granularity = _quant_granularity(t)
            per_tensor += granularity == "per-tensor"
            if granularity == "per-channel":
                per_channel += 1
                per_channel_names.append(_name(t))
            if not _is_const(t, const) or t.buffer in seen:
                continue
            seen.add(t.buffer)  # a buffer shared by several tensors is stored, and counted, once
            dtype = _dtype(t)
            params += math.prod(d for d in _shape(t) if d > 0)
            weight_bytes[dtype] += _buffer_size(model.buffers[t.buffer])
            if dtype in {"int8", "uint8", "int16", "int4", "float16", "bfloat16"}:
                low_precision[dtype] += 1
    summary = QuantizationSummary(per_tensor, per_channel, tuple(per_channel_names), dict(low_precision))
    return params, dict(weight_bytes.most_common()), summary


def _buffer_size(buf: Any) -> int:
    return len(buf.data) if buf.data is not None else int(getattr(buf, "size", 0) or 0)


def _kind(subgraphs: list[Any], const: set[int], ops: list[OpUse]) -> str:
    """Classify by the tensors the kernels compute on, ignoring float I/O around QUANTIZE/DEQUANTIZE."""
    float_compute = any(
        op.runtime_dtypes & _FLOATS for op in ops if op.name not in ("QUANTIZE", "DEQUANTIZE")
    )
    acts: set[str] = set()
    weights: set[str] = set()
    for sg in subgraphs:
        for t in sg.tensors or []:
            quantized = bool(_scales(t))
            if _is_const(t, const):
                weights.add(_dtype(t) if quantized or _dtype(t) in _FLOATS else "other")
            elif quantized:
                acts.add(_dtype(t))
    if "int16" in acts:
        return "mixed" if float_compute else "int16x8"
    if acts & _BYTES8:
        return "mixed" if float_compute else "full-int8"
    if "float16" in weights:
        return "float16"
    if weights & _BYTES8:
        return "dynamic-range"
    return "float32"


def _dynamic(subgraphs: list[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names of tensors with dynamic dimensions beyond the batch, and of those with only a dynamic batch."""
    other, batch = [], []
    for sg in subgraphs:
        for t in sg.tensors or []:
            dims = _ints(t.shapeSignature)
            if any(d < 0 for d in dims[1:]):
                other.append(_name(t))
            elif dims and dims[0] < 0:
                batch.append(_name(t))
    return tuple(other), tuple(batch)


def _signatures(model: Any) -> list[SignatureInfo]:
    out = []
    for sig in model.signatureDefs or []:
        sg = model.subgraphs[sig.subgraphIndex]

        def names(maps: Any, sg: Any = sg) -> dict[str, str]:
            return {_text(m.name): _name(sg.tensors[m.tensorIndex]) for m in maps or []}

        out.append(
            SignatureInfo(
                _text(sig.signatureKey), int(sig.subgraphIndex), names(sig.inputs), names(sig.outputs)
            )
        )
    return out


__all__ = [
    "inspect_model",
    "InspectReport",
    "SignatureInfo",
    "SubgraphInfo",
    "QuantizationSummary",
    "MetadataEntry",
]
