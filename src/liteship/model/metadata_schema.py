"""Hand-written flatbuffer bindings for the TFLite Metadata schema (``metadata_schema.fbs``, "M001").

Field order, field ids and enum values follow the published schema, version 1.5.0 (tensorflow/tflite-support
and MediaPipe ship the same file). tflite-support's generated bindings no longer install beside current
TensorFlow, so liteship carries its own: each table is a dataclass whose fields are declared in schema
order with their flatbuffer kind, and three generic functions do the work —

* :func:`unpack_metadata` reads a buffer through ``flatbuffers.table.Table`` accessors, checking every
  offset against the buffer first (the Python runtime does not verify, and a corrupt buffer must become
  a :class:`~liteship.errors.MetadataError`, not a crash or a gigabyte allocation);
* :func:`pack_metadata` writes with ``flatbuffers.Builder``;
* :func:`to_json` / :func:`from_json` convert to and from the JSON that ``flatc --strict-json`` (and so
  tflite-support's ``MetadataDisplayer.get_metadata_json()``) prints: schema field names, enum names,
  union ``<field>_type`` keys, and only the fields present in the buffer.

A scalar or reference field set to ``None`` is absent from the buffer; scalars equal to their default
(all are 0 in this schema) are left out by the Builder, as every flatbuffers writer does.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
from flatbuffers import number_types as N
from flatbuffers.table import Table

from liteship.errors import MetadataError

FILE_IDENTIFIER = b"M001"
SCHEMA_VERSION = "1.5.0"


class AssociatedFileType(enum.IntEnum):
    UNKNOWN = 0
    DESCRIPTIONS = 1
    TENSOR_AXIS_LABELS = 2
    TENSOR_VALUE_LABELS = 3
    TENSOR_AXIS_SCORE_CALIBRATION = 4
    VOCABULARY = 5  # added in 1.0.1
    SCANN_INDEX_FILE = 6  # added in 1.4.0


class ColorSpaceType(enum.IntEnum):
    UNKNOWN = 0
    RGB = 1
    GRAYSCALE = 2


class BoundingBoxType(enum.IntEnum):
    UNKNOWN = 0
    BOUNDARIES = 1
    UPPER_LEFT = 2
    CENTER = 3


class CoordinateType(enum.IntEnum):
    RATIO = 0
    PIXEL = 1


class ScoreTransformationType(enum.IntEnum):
    IDENTITY = 0
    LOG = 1
    INVERSE_LOGISTIC = 2


class ContentProperties(enum.IntEnum):
    """Union tag of ``Content.content_properties``."""

    NONE = 0
    FeatureProperties = 1
    ImageProperties = 2
    BoundingBoxProperties = 3
    AudioProperties = 4  # added in 1.3.0


class ProcessUnitOptions(enum.IntEnum):
    """Union tag of ``ProcessUnit.options``."""

    NONE = 0
    NormalizationOptions = 1
    ScoreCalibrationOptions = 2
    ScoreThresholdingOptions = 3
    BertTokenizerOptions = 4  # added in 1.1.0
    SentencePieceTokenizerOptions = 5  # added in 1.1.0
    RegexTokenizerOptions = 6  # added in 1.2.1


# Field kinds. Scalars carry (struct format, flatbuffers flags, Builder slot method).
_SCALARS = {
    "byte": ("<b", N.Int8Flags, "PrependInt8Slot"),
    "ubyte": ("<B", N.Uint8Flags, "PrependUint8Slot"),
    "int": ("<i", N.Int32Flags, "PrependInt32Slot"),
    "uint": ("<I", N.Uint32Flags, "PrependUint32Slot"),
    "float": ("<f", N.Float32Flags, "PrependFloat32Slot"),
}
_VECTOR_DTYPES = {"float": np.float32, "uint": np.uint32, "ubyte": np.uint8}


def fb(slot: int, kind: str, of: Any = None, *, align: int = 0) -> Any:
    """Declare a dataclass field stored at flatbuffer field id ``slot``.

    ``kind``: ``string``, a scalar name (``byte``, ``ubyte``, ``int``, ``uint``, ``float``), ``table``,
    ``[table]``, ``[string]``, ``[float]``, ``[uint]``, ``[ubyte]``, ``union_type`` or ``union``.
    ``of``: the enum class of an enum scalar / union tag, the table class of a table (vector), the enum
    class of a union value.
    """
    return field(default=None, metadata={"slot": slot, "kind": kind, "of": of, "align": align})


class MetadataTable:
    """Base of every table binding: generic pack/unpack driven by the field declarations."""

    @classmethod
    def fb_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))  # type: ignore[arg-type]


def _union_class(tag_enum: type[enum.IntEnum], tag: int) -> type[MetadataTable] | None:
    try:
        return _TABLES.get(tag_enum(tag).name)
    except ValueError:
        return None


@dataclass
class AssociatedFile(MetadataTable):
    name: str | None = fb(0, "string")
    description: str | None = fb(1, "string")
    type: int | None = fb(2, "byte", AssociatedFileType)
    locale: str | None = fb(3, "string")
    version: str | None = fb(4, "string")  # added in 1.4.1


@dataclass
class FeatureProperties(MetadataTable):
    pass


@dataclass
class ImageSize(MetadataTable):
    width: int | None = fb(0, "uint")
    height: int | None = fb(1, "uint")


@dataclass
class ImageProperties(MetadataTable):
    color_space: int | None = fb(0, "byte", ColorSpaceType)
    default_size: ImageSize | None = fb(1, "table", ImageSize)


@dataclass
class AudioProperties(MetadataTable):
    sample_rate: int | None = fb(0, "uint")
    channels: int | None = fb(1, "uint")


@dataclass
class BoundingBoxProperties(MetadataTable):
    index: list[int] | None = fb(0, "[uint]")
    type: int | None = fb(1, "byte", BoundingBoxType)
    coordinate_type: int | None = fb(2, "byte", CoordinateType)


@dataclass
class ValueRange(MetadataTable):
    min: int | None = fb(0, "int")
    max: int | None = fb(1, "int")


@dataclass
class Content(MetadataTable):
    content_properties_type: int | None = fb(0, "union_type", ContentProperties)
    content_properties: MetadataTable | None = fb(1, "union", ContentProperties)
    range: ValueRange | None = fb(2, "table", ValueRange)


@dataclass
class NormalizationOptions(MetadataTable):
    mean: list[float] | None = fb(0, "[float]")
    std: list[float] | None = fb(1, "[float]")


@dataclass
class ScoreCalibrationOptions(MetadataTable):
    score_transformation: int | None = fb(0, "byte", ScoreTransformationType)
    default_score: float | None = fb(1, "float")


@dataclass
class ScoreThresholdingOptions(MetadataTable):
    global_score_threshold: float | None = fb(0, "float")


@dataclass
class BertTokenizerOptions(MetadataTable):
    vocab_file: list[AssociatedFile] | None = fb(0, "[table]", AssociatedFile)


@dataclass
class SentencePieceTokenizerOptions(MetadataTable):
    sentencePiece_model: list[AssociatedFile] | None = fb(0, "[table]", AssociatedFile)  # noqa: N815
    vocab_file: list[AssociatedFile] | None = fb(1, "[table]", AssociatedFile)


@dataclass
class RegexTokenizerOptions(MetadataTable):
    delim_regex_pattern: str | None = fb(0, "string")
    vocab_file: list[AssociatedFile] | None = fb(1, "[table]", AssociatedFile)


@dataclass
class ProcessUnit(MetadataTable):
    options_type: int | None = fb(0, "union_type", ProcessUnitOptions)
    options: MetadataTable | None = fb(1, "union", ProcessUnitOptions)


@dataclass
class Stats(MetadataTable):
    max: list[float] | None = fb(0, "[float]")
    min: list[float] | None = fb(1, "[float]")


@dataclass
class TensorGroup(MetadataTable):
    name: str | None = fb(0, "string")
    tensor_names: list[str] | None = fb(1, "[string]")


@dataclass
class TensorMetadata(MetadataTable):
    name: str | None = fb(0, "string")
    description: str | None = fb(1, "string")
    dimension_names: list[str] | None = fb(2, "[string]")
    content: Content | None = fb(3, "table", Content)
    process_units: list[ProcessUnit] | None = fb(4, "[table]", ProcessUnit)
    stats: Stats | None = fb(5, "table", Stats)
    associated_files: list[AssociatedFile] | None = fb(6, "[table]", AssociatedFile)


@dataclass
class CustomMetadata(MetadataTable):
    name: str | None = fb(0, "string")
    data: bytes | None = fb(1, "[ubyte]", align=16)


@dataclass
class SubGraphMetadata(MetadataTable):
    name: str | None = fb(0, "string")
    description: str | None = fb(1, "string")
    input_tensor_metadata: list[TensorMetadata] | None = fb(2, "[table]", TensorMetadata)
    output_tensor_metadata: list[TensorMetadata] | None = fb(3, "[table]", TensorMetadata)
    associated_files: list[AssociatedFile] | None = fb(4, "[table]", AssociatedFile)
    input_process_units: list[ProcessUnit] | None = fb(5, "[table]", ProcessUnit)  # 1.1.0
    output_process_units: list[ProcessUnit] | None = fb(6, "[table]", ProcessUnit)  # 1.1.0
    input_tensor_groups: list[TensorGroup] | None = fb(7, "[table]", TensorGroup)  # 1.2.0
    output_tensor_groups: list[TensorGroup] | None = fb(8, "[table]", TensorGroup)  # 1.2.0
    custom_metadata: list[CustomMetadata] | None = fb(9, "[table]", CustomMetadata)  # 1.5.0


@dataclass
class ModelMetadata(MetadataTable):
    name: str | None = fb(0, "string")
    description: str | None = fb(1, "string")
    version: str | None = fb(2, "string")
    subgraph_metadata: list[SubGraphMetadata] | None = fb(3, "[table]", SubGraphMetadata)
    author: str | None = fb(4, "string")
    license: str | None = fb(5, "string")
    associated_files: list[AssociatedFile] | None = fb(6, "[table]", AssociatedFile)
    min_parser_version: str | None = fb(7, "string")


_TABLES: dict[str, type[MetadataTable]] = {
    c.__name__: c
    for c in (
        FeatureProperties,
        ImageProperties,
        BoundingBoxProperties,
        AudioProperties,
        NormalizationOptions,
        ScoreCalibrationOptions,
        ScoreThresholdingOptions,
        BertTokenizerOptions,
        SentencePieceTokenizerOptions,
        RegexTokenizerOptions,
    )
}

# ---------------------------------------------------------------------------------------------- reading


class _Reader:
    """Bounds-checked reads over one buffer; ``budget`` caps the number of tables visited, because
    tables may be shared (a DAG) and a hostile buffer could otherwise make unpacking explode."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.size = len(buf)
        self.budget = 100_000

    def check(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise MetadataError(
                f"the metadata flatbuffer is corrupted: {what} at byte {pos} (+{length}) lies outside "
                f"the {self.size}-byte buffer."
            )

    def table(self, pos: int, what: str) -> Table:
        self.budget -= 1
        if self.budget < 0:
            raise MetadataError("the metadata flatbuffer is corrupted: too many tables (cyclic or bloated).")
        self.check(pos, 4, what)
        vtable = pos - struct.unpack_from("<i", self.buf, pos)[0]
        self.check(vtable, 4, f"{what} vtable")
        vt_len, obj_len = struct.unpack_from("<HH", self.buf, vtable)
        self.check(vtable, vt_len, f"{what} vtable")
        self.check(pos, obj_len, what)
        return Table(self.buf, pos)

    def indirect(self, pos: int, what: str) -> int:
        self.check(pos, 4, what)
        return pos + struct.unpack_from("<I", self.buf, pos)[0]

    def vector(self, tab: Table, off: int, elem_size: int, what: str) -> tuple[int, int]:
        start = self.indirect(tab.Pos + off, what)
        self.check(start, 4, what)
        n = struct.unpack_from("<I", self.buf, start)[0]
        self.check(start + 4, n * elem_size, what)
        return start + 4, n

    def string(self, tab_or_pos: Table | int, off: int, what: str) -> str:
        base = tab_or_pos.Pos if isinstance(tab_or_pos, Table) else tab_or_pos
        start = self.indirect(base + off, what)
        self.check(start, 4, what)
        n = struct.unpack_from("<I", self.buf, start)[0]
        self.check(start + 4, n, what)
        raw = self.buf[start + 4 : start + 4 + n]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MetadataError(f"the metadata flatbuffer is corrupted: {what} is not UTF-8 ({e}).") from e


def _unpack_table(r: _Reader, cls: type[MetadataTable], pos: int) -> Any:
    name = cls.__name__
    tab = r.table(pos, name)
    values: dict[str, Any] = {}
    tags: dict[int, int] = {}  # union value slot -> tag, read from the preceding *_type field
    for f in cls.fb_fields():
        slot, kind, of = f.metadata["slot"], f.metadata["kind"], f.metadata["of"]
        off = tab.Offset(4 + 2 * slot)
        if not off:
            continue
        where = f"{name}.{f.name}"
        if kind in _SCALARS or kind == "union_type":
            fmt = _SCALARS["ubyte" if kind == "union_type" else kind][0]
            r.check(tab.Pos + off, struct.calcsize(fmt), where)
            value = struct.unpack_from(fmt, r.buf, tab.Pos + off)[0]
            if kind == "float":
                value = _f32(value)
            if kind == "union_type":
                tags[slot + 1] = value
        elif kind == "string":
            value = r.string(tab, off, where)
        elif kind == "table":
            value = _unpack_table(r, of, r.indirect(tab.Pos + off, where))
        elif kind == "union":
            member = _union_class(of, tags.get(slot, 0))
            if member is None:
                continue  # an unknown (newer) union member: skipped, as flatc's printer does
            value = _unpack_table(r, member, r.indirect(tab.Pos + off, where))
        elif kind == "[table]":
            start, n = r.vector(tab, off, 4, where)
            value = [_unpack_table(r, of, r.indirect(start + 4 * i, where)) for i in range(n)]
        elif kind == "[string]":
            start, n = r.vector(tab, off, 4, where)
            value = [r.string(start + 4 * i, 0, where) for i in range(n)]
        elif kind == "[ubyte]":
            start, n = r.vector(tab, off, 1, where)
            value = bytes(r.buf[start : start + n])
        else:
            dtype = np.dtype(_VECTOR_DTYPES[kind[1:-1]]).newbyteorder("<")
            start, n = r.vector(tab, off, dtype.itemsize, where)
            arr = np.frombuffer(r.buf, dtype=dtype, count=n, offset=start)
            value = [_f32(v) for v in arr.tolist()] if kind == "[float]" else arr.tolist()
        values[f.name] = value
    return cls(**values)


def _f32(value: float) -> float:
    """A float32 as the shortest decimal that round-trips it (127.5, 0.1), as flatc prints it."""
    return float(str(np.float32(value)))


def unpack_metadata(buf: bytes) -> ModelMetadata:
    """Read a ``TFLITE_METADATA`` buffer into a :class:`ModelMetadata`.

    Args:
        buf: The metadata flatbuffer (root ``ModelMetadata``, identifier ``M001``).

    Returns:
        The unpacked :class:`ModelMetadata`.

    Raises:
        MetadataError: The buffer is not a TFLite Metadata flatbuffer or is corrupted.
    """
    buf = bytes(buf)
    if len(buf) < 8:
        raise MetadataError(
            f"the metadata buffer is {len(buf)} bytes long; a TFLite Metadata flatbuffer is at least 8 bytes.",
            hint="Rewrite the metadata (`liteship metadata write`).",
        )
    if buf[4:8] != FILE_IDENTIFIER:
        raise MetadataError(
            f"the metadata buffer has identifier {buf[4:8]!r}; expected {FILE_IDENTIFIER!r} "
            "(TFLite Metadata schema).",
            hint="The TFLITE_METADATA entry was written by another tool or is corrupted; rewrite it "
            "with `liteship metadata write`.",
        )
    r = _Reader(buf)
    try:
        return _unpack_table(r, ModelMetadata, r.indirect(0, "root table"))
    except MetadataError as e:
        raise MetadataError(e.message, hint="Rewrite the metadata (`liteship metadata write`).") from e
    except (struct.error, IndexError) as e:
        raise MetadataError(
            f"the metadata flatbuffer is corrupted ({type(e).__name__}: {e}).",
            hint="Rewrite the metadata (`liteship metadata write`).",
        ) from e


# ---------------------------------------------------------------------------------------------- writing


def _pack_table(b: flatbuffers.Builder, obj: MetadataTable) -> int:
    fields = obj.fb_fields()
    refs: dict[str, int] = {}
    # Strings, vectors and sub-tables must be finished before the table that refers to them starts.
    for f in fields:
        value, kind = getattr(obj, f.name), f.metadata["kind"]
        if value is None or kind in _SCALARS or kind == "union_type":
            continue
        if kind == "string":
            refs[f.name] = b.CreateString(value)
        elif kind in ("table", "union"):
            refs[f.name] = _pack_table(b, value)
        elif kind == "[table]":
            refs[f.name] = _vector_of_offsets(b, [_pack_table(b, v) for v in value])
        elif kind == "[string]":
            refs[f.name] = _vector_of_offsets(b, [b.CreateString(s) for s in value])
        elif kind == "[ubyte]":
            refs[f.name] = _byte_vector(b, bytes(value), f.metadata["align"] or 4)
        else:
            refs[f.name] = b.CreateNumpyVector(np.asarray(value, dtype=_VECTOR_DTYPES[kind[1:-1]]))
    b.StartObject(max((f.metadata["slot"] for f in fields), default=-1) + 1)
    for f in fields:
        value, kind, slot = getattr(obj, f.name), f.metadata["kind"], f.metadata["slot"]
        if f.name in refs:
            b.PrependUOffsetTRelativeSlot(slot, refs[f.name], 0)
        elif kind == "union_type":
            tag = value
            member = getattr(obj, f.name[: -len("_type")])
            if tag is None and member is not None:
                tag = f.metadata["of"][type(member).__name__]
            if tag is not None:
                b.PrependUint8Slot(slot, int(tag), 0)
        elif value is not None and kind in _SCALARS:
            getattr(b, _SCALARS[kind][2])(slot, float(value) if kind == "float" else int(value), 0)
    return b.EndObject()


def _vector_of_offsets(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _byte_vector(b: flatbuffers.Builder, data: bytes, alignment: int) -> int:
    # Builder.CreateByteVector aligns to 4; CustomMetadata.data asks for 16 (force_align).
    b.StartVector(1, len(data), alignment)
    b.head = b.head - len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return b.EndVector()


def pack_metadata(metadata: ModelMetadata) -> bytes:
    """Serialize a :class:`ModelMetadata` to a flatbuffer with file identifier ``M001``.

    Args:
        metadata: The metadata to write.

    Returns:
        The bytes for the model's ``TFLITE_METADATA`` buffer.
    """
    b = flatbuffers.Builder(1024)
    b.Finish(_pack_table(b, metadata), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


# ---------------------------------------------------------------------------------------------- walks


def named_files(md: ModelMetadata) -> list[str]:
    """Every associated file name the metadata refers to, wherever it sits in the tree."""
    names: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, AssociatedFile):
            if obj.name and obj.name not in names:
                names.append(obj.name)
        elif isinstance(obj, MetadataTable):
            for f in obj.fb_fields():
                walk(getattr(obj, f.name))
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(md)
    return names


def min_parser_version(md: ModelMetadata) -> str:
    """The oldest metadata parser that understands every field used (schema history in the .fbs).

    Args:
        md: The metadata about to be written.

    Returns:
        A semantic version, at least ``"1.0.0"``.
    """
    found = [(1, 0, 0)]

    def walk(obj: Any) -> None:
        if isinstance(obj, AssociatedFile):
            if obj.type == AssociatedFileType.VOCABULARY:
                found.append((1, 0, 1))
            if obj.type == AssociatedFileType.SCANN_INDEX_FILE:
                found.append((1, 4, 0))
            if obj.version is not None:
                found.append((1, 4, 1))
        if isinstance(obj, (BertTokenizerOptions, SentencePieceTokenizerOptions)):
            found.append((1, 1, 0))
        if isinstance(obj, RegexTokenizerOptions):
            found.append((1, 2, 1))
        if isinstance(obj, AudioProperties):
            found.append((1, 3, 0))
        if isinstance(obj, SubGraphMetadata):
            if obj.input_process_units is not None or obj.output_process_units is not None:
                found.append((1, 1, 0))
            if obj.input_tensor_groups is not None or obj.output_tensor_groups is not None:
                found.append((1, 2, 0))
            if obj.custom_metadata is not None:
                found.append((1, 5, 0))
        if isinstance(obj, MetadataTable):
            for f in obj.fb_fields():
                walk(getattr(obj, f.name))
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(md)
    return ".".join(str(p) for p in max(found))


# ---------------------------------------------------------------------------------------------- JSON


def to_json(obj: MetadataTable) -> dict[str, Any]:
    """The flatc ``--strict-json`` form of a table: schema names, enum names, absent fields left out.

    Args:
        obj: Any table binding, usually a :class:`ModelMetadata`.

    Returns:
        A JSON-ready dict in schema field order.
    """
    out: dict[str, Any] = {}
    for f in obj.fb_fields():
        value, kind, of = getattr(obj, f.name), f.metadata["kind"], f.metadata["of"]
        if value is None:
            if kind != "union_type":
                continue
            member = getattr(obj, f.name[: -len("_type")])
            if member is None:
                continue
            value = of[type(member).__name__]
        if kind in ("table", "union"):
            out[f.name] = to_json(value)
        elif kind == "[table]":
            out[f.name] = [to_json(v) for v in value]
        elif kind == "[ubyte]":
            out[f.name] = list(value)
        elif of is not None and kind in ("byte", "union_type"):
            out[f.name] = _enum_name(of, value)
        else:
            out[f.name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _enum_name(of: type[enum.IntEnum], value: int) -> str | int:
    try:
        return of(value).name
    except ValueError:
        return int(value)  # flatc prints values it has no name for as numbers


def from_json(cls: type[MetadataTable], data: dict[str, Any]) -> Any:
    """Build a table binding from its flatc JSON form (inverse of :func:`to_json`).

    Args:
        cls: The table class, e.g. :class:`ModelMetadata`.
        data: The JSON dict.

    Returns:
        An instance of ``cls``.

    Raises:
        MetadataError: Unknown keys or enum names.
    """
    fields = {f.name: f for f in cls.fb_fields()}
    unknown = set(data) - set(fields)
    if unknown:
        raise MetadataError(
            f"unknown {cls.__name__} fields {sorted(unknown)}; expected some of {list(fields)}."
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        kind, of = f.metadata["kind"], f.metadata["of"]
        if kind in ("byte", "union_type") and of is not None:
            values[name] = _enum_value(of, value, f"{cls.__name__}.{name}")
        elif kind == "table":
            values[name] = from_json(of, value)
        elif kind == "union":
            tag = _enum_value(of, data.get(f"{name}_type", 0), f"{cls.__name__}.{name}_type")
            member = _union_class(of, tag)
            if member is None:
                raise MetadataError(f"{cls.__name__}.{name} is given without a known {name}_type.")
            values[name] = from_json(member, value)
        elif kind == "[table]":
            values[name] = [from_json(of, v) for v in value]
        elif kind == "[ubyte]":
            values[name] = bytes(value)
        else:
            values[name] = value
    return cls(**values)


def _enum_value(of: type[enum.IntEnum], value: str | int, where: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(of[value])
    except KeyError:
        raise MetadataError(f"{where} is {value!r}; expected one of {[m.name for m in of]}.") from None


__all__ = [
    "FILE_IDENTIFIER",
    "SCHEMA_VERSION",
    "AssociatedFileType",
    "ColorSpaceType",
    "BoundingBoxType",
    "CoordinateType",
    "ScoreTransformationType",
    "ContentProperties",
    "ProcessUnitOptions",
    "MetadataTable",
    "AssociatedFile",
    "FeatureProperties",
    "ImageSize",
    "ImageProperties",
    "AudioProperties",
    "BoundingBoxProperties",
    "ValueRange",
    "Content",
    "NormalizationOptions",
    "ScoreCalibrationOptions",
    "ScoreThresholdingOptions",
    "BertTokenizerOptions",
    "SentencePieceTokenizerOptions",
    "RegexTokenizerOptions",
    "ProcessUnit",
    "Stats",
    "TensorGroup",
    "TensorMetadata",
    "CustomMetadata",
    "SubGraphMetadata",
    "ModelMetadata",
    "named_files",
    "min_parser_version",
    "unpack_metadata",
    "pack_metadata",
    "to_json",
    "from_json",
]
