"""Read, verify and rewrite .tflite flatbuffers with the schema bindings that ship in ai-edge-litert.

No TensorFlow here. Everything that reaches the interpreter's C++ goes through :func:`load_model`
first: the whole flatbuffer is walked in Python (bounds-checked), so a truncated or corrupted file
becomes a :class:`~liteship.errors.ModelError` instead of a crash.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship.errors import ModelError
from liteship.types import to_jsonable

try:
    from ai_edge_litert import schema_py_generated as schema
except ImportError:  # pragma: no cover - ai-edge-litert is a core dependency
    try:
        from tflite_runtime import schema_py_generated as schema  # type: ignore[no-redef]
    except ImportError:
        schema = None  # type: ignore[assignment]

FILE_IDENTIFIER = b"TFL3"
MAX_MODEL_BYTES = 2**31 - 1  # flatbuffers' 32-bit offsets; larger models use external buffers

HINT = "Re-export the model, or check that the file was copied completely (compare its size and sha256)."


@dataclass(frozen=True)
class LoadedModel:
    """A verified model: its bytes and the unpacked object tree (``schema.ModelT``)."""

    data: bytes
    model: Any  # schema.ModelT
    path: str | None = None

    @property
    def metadata(self) -> dict[str, bytes]:
        """Named metadata entries (``Model.metadata``) and their buffer contents."""
        return metadata_entries(self.model, self.data)


_BUILTIN_NAMES = (
    {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")} if schema else {}
)


def builtin_code(code: Any) -> int:
    """An ``OperatorCode``'s builtin operator (newer files use ``builtinCode``, older ones the deprecated
    byte; the larger of the two is the real one)."""
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def op_name(model: Any, opcode_index: int) -> str:
    """The op's name: the ``BuiltinOperator`` name, or the custom code (``FlexErf``, ``MyOp``)."""
    code = model.operatorCodes[opcode_index]
    builtin = builtin_code(code)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode
        return custom.decode() if isinstance(custom, bytes) else str(custom)
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")


def tensor_name(tensor: Any) -> str:
    """A schema tensor's name as text (the flatbuffer object API gives bytes)."""
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def read_bytes(source: str | Path | bytes | bytearray | memoryview) -> tuple[bytes, str | None]:
    """Return ``(bytes, path or None)`` for a path or a buffer, with clear errors for bad paths."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = Path(source)
    if not path.exists():
        raise ModelError(f"model file {str(path)!r} does not exist.", hint="Check the path.")
    if path.is_dir():
        raise ModelError(
            f"{str(path)!r} is a directory; expected a .tflite file.",
            hint="To convert a SavedModel directory, use `liteship convert` first.",
        )
    try:
        return path.read_bytes(), str(path)
    except OSError as e:
        raise ModelError(f"cannot read model file {str(path)!r}: {e.strerror or e}.") from e


def load_model(source: str | Path | bytes | bytearray | memoryview) -> LoadedModel:
    """Read and fully verify a .tflite model.

    Args:
        source: A path to a ``.tflite`` file, or its bytes.

    Returns:
        A :class:`LoadedModel` with the bytes and the unpacked ``schema.ModelT``.

    Raises:
        ModelError: Missing file, not a TFLite flatbuffer, truncated or corrupted.
    """
    data, path = read_bytes(source)
    where = repr(path) if path else "the model buffer"
    if schema is None:  # pragma: no cover
        raise ModelError(
            "cannot read .tflite files: ai-edge-litert is not installed.", hint="pip install ai-edge-litert"
        )
    if len(data) < 8:
        raise ModelError(
            f"{where} is {len(data)} bytes long; a .tflite model is at least 8 bytes.", hint=HINT
        )
    if data[4:8] != FILE_IDENTIFIER:
        what = _sniff(data)
        raise ModelError(
            f"{where} is not a TFLite model (no 'TFL3' identifier at byte 4{what}).",
            hint="Give a .tflite file; convert SavedModel/Keras models with `liteship convert`.",
        )
    root = struct.unpack_from("<I", data, 0)[0]
    if root + 4 > len(data):
        raise ModelError(
            f"{where} is truncated or corrupted: its root table points past the end "
            f"({root} > {len(data)} bytes).",
            hint=HINT,
        )
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        _check_structure(model, len(data))
    except ModelError as e:
        raise ModelError(f"{where} is corrupted: {e.message}", hint=HINT) from e
    except Exception as e:  # bounds errors from the flatbuffers runtime: struct.error, IndexError, …
        raise ModelError(f"{where} is truncated or corrupted ({type(e).__name__}: {e}).", hint=HINT) from e
    return LoadedModel(data=data, model=model, path=path)


def zip_kind(data: bytes) -> str | None:
    """What a zip archive holds: ``"package"`` (a liteship ``.lsp``: manifest.json), ``"keras"`` (a
    ``.keras`` save: config.json), ``"zip"`` (something else), or None when ``data`` is not a zip."""
    if data[:4] != b"PK\x03\x04":
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "zip"
    if "manifest.json" in names:
        return "package"
    return "keras" if "config.json" in names else "zip"


def _sniff(data: bytes) -> str:
    kind = zip_kind(data)
    if kind == "keras":
        return "; it is a Keras model (a .keras zip archive) — convert it with `liteship convert`"
    if kind == "package":
        return "; it is a liteship package — check it with `liteship verify`"
    if data[:2] == b"PK":
        return "; it looks like a zip archive"
    if data[:4] == b"\x89HDF":
        return "; it looks like an HDF5 (.h5) Keras file — convert it with `liteship convert`"
    if data[:1] in (b"{", b"["):
        return "; it looks like JSON"
    if data[:8] == b"\x08\x01\x12\x00\x00\x00\x00\x00" or b"saved_model" in data[:64]:
        return "; it looks like a SavedModel protobuf — convert its directory with `liteship convert`"
    return ""


def _check_structure(model: Any, size: int) -> None:
    """Cross-references the flatbuffer format does not check: indices into tensors/buffers/opcodes."""
    n_buffers = len(model.buffers or [])
    n_codes = len(model.operatorCodes or [])
    if not model.subgraphs:
        raise ModelError("the model has no subgraphs.")
    for si, sg in enumerate(model.subgraphs):
        tensors = sg.tensors or []
        for t in tensors:
            if t.buffer < 0 or t.buffer >= max(n_buffers, 1):
                raise ModelError(f"subgraph {si} tensor refers to buffer {t.buffer} of {n_buffers}.")
        for name, idxs in (("inputs", sg.inputs), ("outputs", sg.outputs)):
            for i in idxs if idxs is not None else []:
                if not 0 <= i < len(tensors):
                    raise ModelError(f"subgraph {si} {name} refer to tensor {i} of {len(tensors)}.")
        for op in sg.operators or []:
            if not 0 <= op.opcodeIndex < n_codes:
                raise ModelError(f"subgraph {si} has an operator with opcode {op.opcodeIndex} of {n_codes}.")
            for i in list(op.inputs if op.inputs is not None else []) + list(
                op.outputs if op.outputs is not None else []
            ):
                if not -1 <= i < len(tensors):
                    raise ModelError(f"subgraph {si} has an operator using tensor {i} of {len(tensors)}.")
    for b in model.buffers or []:
        if getattr(b, "offset", 0) and b.offset + b.size > size:
            raise ModelError(f"a weight buffer lies outside the file ({b.offset}+{b.size} > {size} bytes).")
    for m in model.metadata or []:
        if not 0 <= m.buffer < n_buffers:
            raise ModelError(f"metadata entry refers to buffer {m.buffer} of {n_buffers}.")
    for sig in model.signatureDefs or []:
        if not 0 <= sig.subgraphIndex < len(model.subgraphs):
            raise ModelError(f"a signature refers to subgraph {sig.subgraphIndex} of {len(model.subgraphs)}.")
        n_tensors = len(model.subgraphs[sig.subgraphIndex].tensors or [])
        for m in list(sig.inputs or []) + list(sig.outputs or []):
            if not 0 <= m.tensorIndex < n_tensors:
                raise ModelError(f"a signature refers to tensor {m.tensorIndex} of {n_tensors}.")


def has_data(buf: Any) -> bool:
    """Whether a ``Buffer`` holds constant bytes: inline, or stored after the flatbuffer (an offset
    above TFLite's placeholder 1)."""
    return (buf.data is not None and len(buf.data) > 0) or getattr(buf, "offset", 0) > 1


def buffer_bytes(model: Any, index: int, data: bytes | None = None) -> bytes:
    """The contents of buffer ``index`` (inline, or at an offset in ``data`` for large models)."""
    buf = model.buffers[index]
    if buf.data is not None:
        return bytes(bytearray(buf.data)) if not hasattr(buf.data, "tobytes") else buf.data.tobytes()
    if getattr(buf, "offset", 0) and data is not None:
        return data[buf.offset : buf.offset + buf.size]
    return b""


def metadata_entries(model: Any, data: bytes | None = None) -> dict[str, bytes]:
    """``{name: bytes}`` for every entry of ``Model.metadata`` (e.g. ``min_runtime_version``)."""
    out: dict[str, bytes] = {}
    for m in model.metadata or []:
        name = m.name.decode("utf-8", "replace") if isinstance(m.name, bytes) else str(m.name)
        out[name] = buffer_bytes(model, m.buffer, data)
    return out


def set_metadata_entry(data: bytes, name: str, value: bytes) -> bytes:
    """Return a copy of the model with metadata entry ``name`` set to ``value`` (added or replaced).

    A zip archive appended to the flatbuffer (TFLite Metadata's associated files) is kept, and so are
    weights stored after the flatbuffer (``Buffer.offset``/``size``, see :func:`pack_model`).
    """
    loaded = load_model(data)
    model = loaded.model
    import numpy as np

    payload = np.frombuffer(value, dtype=np.uint8).copy()
    for m in model.metadata or []:
        mname = m.name.decode("utf-8", "replace") if isinstance(m.name, bytes) else str(m.name)
        if mname == name:
            buf = model.buffers[m.buffer]
            buf.data = payload
            # the old value may have been stored after the flatbuffer (ai-edge-quantizer writes metadata
            # there too); its offset must go, or the new inline value points past the end of the file
            buf.offset, buf.size = 0, 0
            break
    else:
        buf = schema.BufferT()
        buf.data = payload
        model.buffers.append(buf)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata = (model.metadata or []) + [entry]
    return attach_files(pack_model(model, data), associated_files(data))


def pack_model(model: Any, data: bytes | None = None) -> bytes:
    """Serialize a ``schema.ModelT`` to .tflite bytes.

    Buffers stored after the flatbuffer (``Buffer.offset > 1``: the converter writes them for models
    near the flatbuffer's 2 GB limit, or when forced with ``_experimental_use_buffer_offset``) are read
    from ``data``, the file ``model`` was loaded from, and written after the new flatbuffer the way the
    converter lays them out: each at a 16-byte aligned offset from the start of the file. ``model`` is
    left as it was (its offsets still point into ``data``).

    Args:
        model: The object tree to write.
        data: The bytes ``model`` was read from; needed only when it has such buffers.

    Raises:
        ModelError: ``model`` has buffers after the flatbuffer and ``data`` was not given, or ``data``
            does not hold them.
    """
    external = [b for b in model.buffers or [] if b.data is None and getattr(b, "offset", 0) > 1]
    if not external:
        return _pack(model)
    if data is None:
        raise ModelError(
            f"the model keeps {len(external)} weight buffer(s) after the flatbuffer, but their bytes were "
            "not given; writing it would drop them.",
            hint="Pass the original model bytes (pack_model(model, data)).",
        )
    original = [b.offset for b in external]
    for b in external:
        if b.offset + b.size > len(data):
            raise ModelError(
                f"a weight buffer lies outside the model bytes given ({b.offset}+{b.size} > {len(data)}).",
                hint=HINT,
            )
    chunks = [data[b.offset : b.offset + b.size] for b in external]
    try:
        for b in external:  # non-zero, so the field is written and the flatbuffer's size is final
            b.offset = _OFFSET_PLACEHOLDER
        size = len(_pack(model))
        position = size
        for b, chunk in zip(external, chunks, strict=True):
            position = _aligned(position)
            b.offset, position = position, position + len(chunk)
        out = bytearray(_pack(model))
        if len(out) != size:  # pragma: no cover - the offsets are fixed-width fields
            raise ModelError(f"repacking changed the flatbuffer's size ({size} → {len(out)} bytes).")
        for b, chunk in zip(external, chunks, strict=True):
            out += bytes(b.offset - len(out))
            out += chunk
    finally:
        for b, offset in zip(external, original, strict=True):
            b.offset = offset
    return bytes(out)


_OFFSET_PLACEHOLDER = 1  # TFLite reads offsets ≤ 1 as "no external data" (1 is its own placeholder)
_BUFFER_ALIGNMENT = 16  # as the converter aligns them


def _aligned(n: int) -> int:
    return -(-n // _BUFFER_ALIGNMENT) * _BUFFER_ALIGNMENT


def _pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024 * 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def associated_files(data: bytes) -> dict[str, bytes]:
    """Files zipped onto the end of the model (TFLite Metadata's associated files, e.g. labels.txt)."""
    if b"PK\x05\x06" not in data[-(1 << 16) - 22 :]:
        return {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as e:
        # NotImplementedError: unknown compression method; RuntimeError: encrypted member.
        raise ModelError(f"the files zipped onto the model are unreadable ({e}).", hint=HINT) from e


def attach_files(model_bytes: bytes, files: dict[str, bytes]) -> bytes:
    """Append ``files`` as a zip archive after the flatbuffer, as tflite-support's writer does
    (offsets relative to the start of the whole file, so zip readers that ignore the prefix work)."""
    if not files:
        return model_bytes
    out = io.BytesIO()
    out.write(model_bytes)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return out.getvalue()


LITESHIP_ENTRY = "LITESHIP"


def read_liteship_info(source: str | Path | bytes | LoadedModel) -> dict[str, Any]:
    """liteship's own record in the model (JSON in metadata entry ``LITESHIP``): preprocessing,
    source, recipe, calibration range. ``{}`` when the model was not made by liteship."""
    import json

    loaded = source if isinstance(source, LoadedModel) else load_model(source)
    raw = metadata_entries(loaded.model, loaded.data).get(LITESHIP_ENTRY)
    if not raw:
        return {}
    try:
        return json.loads(raw.rstrip(b"\0").decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"the model's {LITESHIP_ENTRY} metadata entry is not valid JSON ({e}).") from e


def write_liteship_info(data: bytes, info: dict[str, Any]) -> bytes:
    """Return a copy of the model carrying ``info`` (JSON) in metadata entry ``LITESHIP``."""
    import json

    return set_metadata_entry(data, LITESHIP_ENTRY, json.dumps(to_jsonable(info), sort_keys=True).encode())


__all__ = [
    "read_liteship_info",
    "write_liteship_info",
    "LITESHIP_ENTRY",
    "LoadedModel",
    "load_model",
    "read_bytes",
    "metadata_entries",
    "set_metadata_entry",
    "pack_model",
    "associated_files",
    "attach_files",
    "buffer_bytes",
    "schema",
    "FILE_IDENTIFIER",
]


def batch_one_copy(data: bytes) -> bytes | None:
    """A copy of the model whose dynamic batch (a ``-1`` first dimension) is fixed at 1.

    GPU and NPU accelerators compile static shapes only, while TensorFlow's converter gives Keras and
    SavedModel sources a dynamic batch. The tensors' ``shape`` already holds 1 where the signature holds
    ``-1``, so the shape signatures are dropped; a ``RESHAPE`` whose target shape was computed at run time
    (``SHAPE → STRIDED_SLICE → PACK``, as a Keras ``Flatten`` converts) gets its now-static output shape
    as a constant, and the ops left computing nothing are removed. Numerics are untouched.

    Returns:
        The batch-1 bytes, or ``None`` when nothing is dynamic, or when a dimension other than the first
        is (a sequence length, say): fixing that at 1 would change what the model computes.
    """
    model = load_model(data).model
    dynamic = []
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            sig = [] if t.shapeSignature is None else [int(d) for d in t.shapeSignature]
            if -1 not in sig:
                continue
            shape = [] if t.shape is None else [int(d) for d in t.shape]
            if -1 in sig[1:] or len(shape) != len(sig) or shape[0] != 1:
                return None
            dynamic.append(t)
    if not dynamic:
        return None
    for t in dynamic:
        t.shapeSignature = None
    for sg in model.subgraphs or []:
        _constant_reshape_targets(model, sg)
        _drop_dead_ops(sg)
    return attach_files(pack_model(model, data), associated_files(data))


def _constant_reshape_targets(model: Any, sg: Any) -> None:
    import numpy as np

    for op in sg.operators or []:
        if (
            builtin_code(model.operatorCodes[op.opcodeIndex]) != schema.BuiltinOperator.RESHAPE
            or op.inputs is None
            or len(op.inputs) < 2
        ):
            continue
        target = sg.tensors[op.inputs[1]]
        if target.buffer and has_data(model.buffers[target.buffer]):
            continue  # a constant already
        shape = np.array([int(d) for d in sg.tensors[op.outputs[0]].shape], np.int32)
        buf = schema.BufferT()
        buf.data = np.frombuffer(shape.tobytes(), np.uint8)
        model.buffers.append(buf)
        t = schema.TensorT()
        t.shape, t.type, t.buffer = [len(shape)], schema.TensorType.INT32, len(model.buffers) - 1
        t.name = (target.name or b"reshape_target") + b"/batch1"
        sg.tensors.append(t)
        op.inputs = [op.inputs[0], len(sg.tensors) - 1, *op.inputs[2:]]


def _drop_dead_ops(sg: Any) -> None:
    """Remove operators whose outputs nothing reads (walking back from the subgraph's outputs)."""
    needed = {int(i) for i in (sg.outputs if sg.outputs is not None else [])}
    kept = []
    for op in reversed(sg.operators or []):
        outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        if not outs or any(o in needed for o in outs):  # no outputs: a side effect, keep it
            kept.append(op)
            needed |= {int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0}
    sg.operators = kept[::-1]
