"""Standard TFLite Metadata: read and write it as tflite-support does, without tflite-support or TensorFlow.

A model carries its metadata in two places: a ``TFLITE_METADATA`` entry of ``Model.metadata`` whose
buffer is a ``ModelMetadata`` flatbuffer (see :mod:`liteship.model.metadata_schema`), and a zip archive
appended to the flatbuffer holding the associated files it names (``labels.txt``, vocabularies…). That
is the layout tflite-support's ``MetadataPopulator`` writes and MediaPipe / Android tooling reads.

Example:
    >>> out = write_metadata("model.tflite", "model_md.tflite", name="digits", labels=[str(i) for i in range(10)],
    ...                      input_mean=0.0, input_std=1.0)   # doctest: +SKIP
    >>> read_metadata(out)["name"]                               # doctest: +SKIP
    'digits'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship._fs import write_atomic
from liteship.data import parse_labels
from liteship.errors import DataError, MetadataError, ModelError
from liteship.model import flatbuffer as fbm
from liteship.model import metadata_schema as ms
from liteship.types import Preprocessing, ReportMixin, check_normalization

METADATA_ENTRY = "TFLITE_METADATA"
LABELS_DESCRIPTION = "Labels for categories that the model can recognize."

ModelSource = str | Path | bytes | bytearray | memoryview | fbm.LoadedModel

# TFLite TensorType -> numpy dtype name, for the tensor types metadata cares about.
_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}
_INT_RANGES = {"uint8": (0.0, 255.0), "int8": (-128.0, 127.0), "int16": (-32768.0, 32767.0)}


def _load(source: ModelSource) -> fbm.LoadedModel:
    return source if isinstance(source, fbm.LoadedModel) else fbm.load_model(source)


def _where(loaded: fbm.LoadedModel) -> str:
    return repr(loaded.path) if loaded.path else "the model"


# ---------------------------------------------------------------------------------------------- reading


def read_model_metadata(source: ModelSource) -> ms.ModelMetadata | None:
    """The model's TFLite Metadata as bindings, or ``None`` when it has none.

    Args:
        source: A ``.tflite`` path, its bytes, or a :class:`~liteship.model.LoadedModel`.

    Returns:
        The unpacked :class:`~liteship.model.metadata_schema.ModelMetadata`, or ``None``.

    Raises:
        ModelError: The file is not a readable model.
        MetadataError: The ``TFLITE_METADATA`` buffer is corrupted.
    """
    loaded = _load(source)
    raw = fbm.metadata_entries(loaded.model, loaded.data).get(METADATA_ENTRY)
    if raw is None:
        return None
    try:
        return ms.unpack_metadata(raw)
    except MetadataError as e:
        raise MetadataError(
            f"{_where(loaded)}: {METADATA_ENTRY} cannot be read: {e.message}", hint=e.hint
        ) from e


def read_metadata(source: ModelSource) -> dict[str, Any]:
    """The model's TFLite Metadata as JSON-ready data, as tflite-support's displayer prints it.

    Keys and layout are those of ``MetadataDisplayer.get_metadata_json()`` (flatc's JSON: schema field
    names, enum names, ``*_type`` keys for unions, absent fields left out).

    Args:
        source: A ``.tflite`` path, its bytes, or a :class:`~liteship.model.LoadedModel`.

    Returns:
        The metadata dict; ``{}`` when the model has no ``TFLITE_METADATA``.

    Raises:
        ModelError: The file is not a readable model.
        MetadataError: The metadata buffer is corrupted.
    """
    md = read_model_metadata(source)
    return ms.to_json(md) if md is not None else {}


def associated_files(source: ModelSource) -> dict[str, bytes]:
    """The files zipped onto the model (``{name: content}``), e.g. ``labels.txt``.

    Args:
        source: A ``.tflite`` path, its bytes, or a :class:`~liteship.model.LoadedModel`.

    Returns:
        Every file in the appended zip archive; ``{}`` when there is none.

    Raises:
        ModelError: The model or its zip archive cannot be read.
    """
    return fbm.associated_files(_load(source).data)


def _first_input(md: ms.ModelMetadata | None) -> ms.TensorMetadata | None:
    if md is None or not md.subgraph_metadata:
        return None
    inputs = md.subgraph_metadata[0].input_tensor_metadata
    return inputs[0] if inputs else None


def normalization_from_metadata(source: ModelSource) -> Preprocessing | None:
    """Input normalization declared in the model's metadata, for runners and the device agent.

    Reads the first input's ``NormalizationOptions`` (``(x - mean) / std``) and its image color space.

    Args:
        source: A ``.tflite`` path, its bytes, or a :class:`~liteship.model.LoadedModel`.

    Returns:
        A :class:`~liteship.types.Preprocessing`, or ``None`` when the metadata declares no normalization.

    Raises:
        MetadataError: The metadata is corrupted, or mean/std cannot be used (e.g. a zero std).
    """
    tensor = _first_input(read_model_metadata(source))
    if tensor is None:
        return None
    norm = next(
        (u.options for u in tensor.process_units or [] if isinstance(u.options, ms.NormalizationOptions)),
        None,
    )
    if norm is None or not norm.mean or not norm.std:
        return None
    props = tensor.content.content_properties if tensor.content else None
    grayscale = None
    if isinstance(props, ms.ImageProperties) and props.color_space:
        grayscale = props.color_space == ms.ColorSpaceType.GRAYSCALE
    try:
        return Preprocessing(mean=tuple(norm.mean), std=tuple(norm.std), grayscale=grayscale)
    except DataError as e:  # e.g. a zero std: report it as the metadata's fault
        raise MetadataError(
            f"the model's input normalization (mean={norm.mean}, std={norm.std}) cannot be used: {e}",
            hint="Rewrite the metadata with a non-zero std (write_metadata, or `liteship metadata write`).",
        ) from e


def labels_from_metadata(source: ModelSource) -> list[str] | None:
    """Class labels: the ``TENSOR_AXIS_LABELS`` file of the first output that has one.

    When several label files are attached (one per locale), the first is used, as the schema says.

    Args:
        source: A ``.tflite`` path, its bytes, or a :class:`~liteship.model.LoadedModel`.

    Returns:
        One label per line of the file, or ``None`` when the metadata names no label file.

    Raises:
        MetadataError: The metadata names a label file that is not zipped onto the model.
    """
    loaded = _load(source)
    md = read_model_metadata(loaded)
    for sub in (md.subgraph_metadata or []) if md else []:
        for tensor in sub.output_tensor_metadata or []:
            for f in tensor.associated_files or []:
                if f.type == ms.AssociatedFileType.TENSOR_AXIS_LABELS and f.name:
                    return _split_labels(_file(loaded, f.name))
    return None


def _file(loaded: fbm.LoadedModel, name: str) -> bytes:
    files = fbm.associated_files(loaded.data)
    if name not in files:
        raise MetadataError(
            f"{_where(loaded)}: the metadata names associated file {name!r}, but the zip archive appended "
            f"to the model holds {sorted(files) or 'no files'}.",
            hint="Rewrite the metadata together with its labels (write_metadata, or `liteship metadata write`).",
        )
    return files[name]


def _split_labels(raw: bytes) -> list[str]:
    return parse_labels(raw)


@dataclass(frozen=True)
class MetadataReport(ReportMixin):
    """What ``liteship metadata show`` renders.

    Attributes:
        path: The model file, or ``None`` for bytes.
        metadata: The metadata JSON (:func:`read_metadata`); ``{}`` when there is none.
        files: Size in bytes of every file zipped onto the model.
        missing_files: Files the metadata names that the zip archive lacks.
    """

    path: str | None
    metadata: dict[str, Any]
    files: dict[str, int] = field(default_factory=dict)
    missing_files: list[str] = field(default_factory=list)


def metadata_report(source: ModelSource) -> MetadataReport:
    """Read the metadata and the associated files of a model into one report.

    Args:
        source: A ``.tflite`` path, its bytes, or a :class:`~liteship.model.LoadedModel`.

    Returns:
        A :class:`MetadataReport`.
    """
    loaded = _load(source)
    md = read_model_metadata(loaded)
    files = fbm.associated_files(loaded.data)
    named = ms.named_files(md) if md else []
    return MetadataReport(
        path=loaded.path,
        metadata=ms.to_json(md) if md else {},
        files={k: len(v) for k, v in files.items()},
        missing_files=[n for n in named if n not in files],
    )


# ---------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def is_image(self) -> bool:
        # NHWC with 1 or 3 channels: what tflite-support's image writers and MediaPipe treat as images.
        return len(self.shape) == 4 and self.shape[-1] in (1, 3)


def _tensors(loaded: fbm.LoadedModel) -> tuple[list[_Tensor], list[_Tensor]]:
    sg = loaded.model.subgraphs[0]

    def one(i: int) -> _Tensor:
        t = sg.tensors[i]
        name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or "")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        return _Tensor(name, shape, _DTYPES.get(int(t.type), f"type{t.type}"))

    return [one(i) for i in sg.inputs], [one(i) for i in sg.outputs]


def _floats(value: float | Sequence[float] | None, what: str) -> list[float] | None:
    if value is None:
        return None
    values = [float(value)] if isinstance(value, (int, float, np.floating, np.integer)) else list(value)
    if not values:
        raise MetadataError(f"{what} is empty; expected one value or one per channel.")
    return [float(v) for v in values]


def _per_tensor(values: Sequence[str] | None, count: int, what: str) -> list[str | None]:
    values = list(values or [])
    if len(values) > count:
        raise MetadataError(
            f"{len(values)} {what} given, but the model has {count}.",
            hint=f"Give at most {count}, in the model's order.",
        )
    return values + [None] * (count - len(values))


def _label_file_names(md: ms.ModelMetadata | None) -> list[str]:
    """Names of the ``TENSOR_AXIS_LABELS`` files the metadata attaches to outputs, in order."""
    subgraphs = (md.subgraph_metadata or []) if md is not None else []
    return [
        f.name
        for sub in subgraphs
        for tensor in sub.output_tensor_metadata or []
        for f in tensor.associated_files or []
        if f.type == ms.AssociatedFileType.TENSOR_AXIS_LABELS and f.name
    ]


def _existing_labels(loaded: fbm.LoadedModel) -> tuple[str, list[str], bytes] | None:
    """The labels file the model's current metadata declares, when it is zipped onto the model: a
    rewrite without new labels keeps it."""
    files = fbm.associated_files(loaded.data)
    for name in _label_file_names(read_model_metadata(loaded)):
        if name in files:
            return name, _split_labels(files[name]), files[name]
    return None


def _kept_files(loaded: fbm.LoadedModel) -> dict[str, bytes]:
    """Associated files a metadata rewrite keeps: every file zipped onto the model except the label
    files of its current metadata (the new metadata declares labels afresh, the same ones by default)."""
    labels = set(_label_file_names(read_model_metadata(loaded)))
    return {n: c for n, c in fbm.associated_files(loaded.data).items() if n not in labels}


def _labels_file(labels: Sequence[str] | str | Path) -> tuple[str, list[str], bytes]:
    """``(file name, labels, file content)`` from a list of labels or a labels file."""
    if isinstance(labels, (str, Path)):
        path = Path(labels)
        if not path.is_file():
            state = "is a directory" if path.is_dir() else "does not exist"
            raise MetadataError(
                f"labels file {str(path)!r} {state}.",
                hint="Give a text file with one label per line, or a list of labels.",
            )
        raw = path.read_bytes()
        return path.name, _split_labels(raw), raw
    items = [str(x) for x in labels]
    bad = [x for x in items if "\n" in x or "\r" in x]
    if bad:
        raise MetadataError(f"labels must be single lines; {bad[0]!r} contains a line break.")
    return "labels.txt", items, ("\n".join(items) + "\n").encode("utf-8")


def _input_stats(tensor: _Tensor, mean: list[float] | None, std: list[float] | None) -> ms.Stats | None:
    """The value range of an input tensor, as tflite-support's image writers record it."""
    if tensor.dtype in _INT_RANGES:
        lo, hi = _INT_RANGES[tensor.dtype]
        return ms.Stats(max=[hi], min=[lo])
    if tensor.is_image and mean and std and tensor.dtype == "float32":
        n = max(len(mean), len(std))
        m = mean * n if len(mean) == 1 else mean
        s = std * n if len(std) == 1 else std
        return ms.Stats(
            max=[ms._f32((255.0 - a) / b) for a, b in zip(m, s, strict=True)],
            min=[ms._f32((0.0 - a) / b) for a, b in zip(m, s, strict=True)],
        )
    return None


def _stats(lo: Sequence[float] | None, hi: Sequence[float] | None, what: str) -> ms.Stats | None:
    if lo is None and hi is None:
        return None
    low, high = _floats(lo, f"{what}_min"), _floats(hi, f"{what}_max")
    if low is not None and high is not None:
        if len(low) != len(high) and 1 not in (len(low), len(high)):
            raise MetadataError(
                f"{what}_min has {len(low)} values and {what}_max {len(high)}; expected equal counts or 1."
            )
        n = max(len(low), len(high))  # one value broadcasts over the other's channels
        lows, highs = (low * n if len(low) == 1 else low), (high * n if len(high) == 1 else high)
        bad = [(a, b) for a, b in zip(lows, highs, strict=True) if a > b]
        if bad:
            raise MetadataError(
                f"{what}_min {low} is greater than {what}_max {high} ({bad[0][0]:g} > {bad[0][1]:g}); "
                "expected min <= max.",
                hint=f"Swap them, or check which of {what}_min/{what}_max you meant.",
            )
    return ms.Stats(max=high, min=low)


def _check_channels(tensor: _Tensor, values: dict[str, list[float]]) -> None:
    """Normalization has one value, or one per channel (the last dimension) of input 0."""
    channels = tensor.shape[-1] if tensor.shape else 1
    for what, v in values.items():
        if len(v) not in (1, channels):
            expected = "1 value" if channels == 1 else f"1 value or {channels}"
            raise MetadataError(
                f"{what} has {len(v)} values, but input 0 ({tensor.name or 'unnamed'}, shape "
                f"{list(tensor.shape)}) has {channels} channel(s); expected {expected}.",
                hint=f"Give one {what} value, or one per channel.",
            )


def write_metadata(
    model: ModelSource,
    output: str | Path | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    description: str | None = None,
    author: str | None = None,
    license: str | None = None,
    labels: Sequence[str] | str | Path | None = None,
    labels_description: str = LABELS_DESCRIPTION,
    input_mean: float | Sequence[float] | None = None,
    input_std: float | Sequence[float] | None = None,
    preprocessing: Preprocessing | None = None,
    color_space: str | None = None,
    input_names: Sequence[str] | None = None,
    input_descriptions: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    output_descriptions: Sequence[str] | None = None,
    input_min: Sequence[float] | float | None = None,
    input_max: Sequence[float] | float | None = None,
    output_min: Sequence[float] | float | None = None,
    output_max: Sequence[float] | float | None = None,
    score_threshold: float | None = None,
) -> bytes:
    """Write standard TFLite Metadata into a model, replacing any it had.

    Builds a ``ModelMetadata`` for subgraph 0 (one ``TensorMetadata`` per input and output, as
    tflite-support's populator requires), stores it in the ``TFLITE_METADATA`` entry and zips the labels
    file onto the model as a ``TENSOR_AXIS_LABELS`` file of the output. Old metadata is replaced; the
    files zipped onto the model are kept (a vocabulary, a second model…), and so is its labels file when
    ``labels`` is not given (then re-declared on the output it fits); new labels replace the old labels
    file. Other metadata entries (``min_runtime_version``, liteship's own) are kept.

    Image inputs (NHWC, 1 or 3 channels) get ``ImageProperties`` (color space from the channel count
    unless ``color_space`` is given) and, with normalization, value ranges as tflite-support records them.
    Normalization applies to input 0, the one tflite-support's writers describe.

    Args:
        model: A ``.tflite`` path, its bytes, or a :class:`~liteship.model.LoadedModel`.
        output: Where to write the result (atomically). Defaults to ``None``: only return the bytes.
        name: Model name. Defaults to ``None`` (left out), as do ``version``, ``description``,
            ``author`` and ``license``.
        version: Model version, e.g. ``"1.2.0"``.
        description: What the model does.
        author: Who made it.
        license: Its license.
        labels: Class labels, as a list or a text file with one label per line. Attached to the first
            output whose last dimension equals their number.
        labels_description: Description of the labels file.
        input_mean: Normalization mean, one value or one per channel, on raw inputs (0..255 pixels).
            Defaults to the normalization the model's metadata declares (kept), else none.
        input_std: Normalization standard deviation; required with ``input_mean`` (and vice versa).
        preprocessing: A :class:`~liteship.types.Preprocessing` to take mean/std (and grayscale) from,
            instead of ``input_mean``/``input_std``.
        color_space: ``"RGB"`` or ``"GRAYSCALE"`` for image inputs. Defaults to the channel count.
        input_names: Names of the inputs in the metadata. Defaults to ``"image"`` for an image input,
            else the model's tensor name.
        input_descriptions: Descriptions of the inputs, in order.
        output_names: Names of the outputs. Defaults to ``"probability"`` for the labelled output, else
            the model's tensor name.
        output_descriptions: Descriptions of the outputs, in order.
        input_min: Minimum value(s) of input 0; overrides the range derived from normalization.
        input_max: Maximum value(s) of input 0.
        output_min: Minimum value(s) of output 0 (e.g. ``0.0`` for probabilities).
        output_max: Maximum value(s) of output 0.
        score_threshold: A ``ScoreThresholdingOptions`` threshold on the labelled output.

    Returns:
        The new model bytes.

    Raises:
        ModelError: The model cannot be read.
        MetadataError: Arguments that do not fit the model (e.g. 9 labels for 10 classes).
    """
    loaded = _load(model)
    # _build takes every keyword parameter above by name.
    md, files = _build(
        loaded, **{k: v for k, v in locals().items() if k not in ("model", "output", "loaded")}
    )
    data = write_model_metadata(loaded, md, {**_kept_files(loaded), **files})
    if output is not None:
        _write_atomic(Path(output), data)
    return data


def _build(loaded: fbm.LoadedModel, **kw: Any) -> tuple[ms.ModelMetadata, dict[str, bytes]]:
    inputs, outputs = _tensors(loaded)
    mean, std = _normalization(kw["input_mean"], kw["input_std"], kw["preprocessing"])
    if mean is None:  # not given: the model's declared normalization stays its rule
        declared = normalization_from_metadata(loaded)
        if declared is not None:
            mean, std = list(declared.mean), list(declared.std)
    if inputs and mean is not None and std is not None:  # _normalization gives both or neither
        _check_channels(inputs[0], {"input_mean": mean, "input_std": std})
    in_names = _per_tensor(kw["input_names"], len(inputs), "input names")
    in_descs = _per_tensor(kw["input_descriptions"], len(inputs), "input descriptions")
    out_names = _per_tensor(kw["output_names"], len(outputs), "output names")
    out_descs = _per_tensor(kw["output_descriptions"], len(outputs), "output descriptions")
    space = _color_space(kw["color_space"], kw["preprocessing"])

    labelled, files, label_file = None, {}, None
    given = _labels_file(kw["labels"]) if kw["labels"] is not None else _existing_labels(loaded)
    if given is not None:
        fname, items, raw = given
        labelled = _labelled_output(outputs, len(items), loaded)
        files[fname] = raw
        label_file = ms.AssociatedFile(
            name=fname, description=kw["labels_description"], type=ms.AssociatedFileType.TENSOR_AXIS_LABELS
        )

    in_md = []
    for i, t in enumerate(inputs):
        tm = ms.TensorMetadata(
            name=in_names[i] or ("image" if t.is_image else t.name), description=in_descs[i]
        )
        if t.is_image:
            cs = space or (ms.ColorSpaceType.GRAYSCALE if t.shape[-1] == 1 else ms.ColorSpaceType.RGB)
            tm.content = ms.Content(content_properties=ms.ImageProperties(color_space=cs))
        else:
            tm.content = ms.Content(content_properties_type=ms.ContentProperties.FeatureProperties)
        if i == 0:
            if mean is not None:
                tm.process_units = [ms.ProcessUnit(options=ms.NormalizationOptions(mean=mean, std=std))]
            tm.stats = _stats(kw["input_min"], kw["input_max"], "input") or _input_stats(t, mean, std)
        in_md.append(tm)

    out_md = []
    for i, t in enumerate(outputs):
        default = "probability" if i == labelled else t.name
        tm = ms.TensorMetadata(name=out_names[i] or default, description=out_descs[i])
        # The type tag without a (empty) FeatureProperties table: what tflite-support's files carry.
        tm.content = ms.Content(content_properties_type=ms.ContentProperties.FeatureProperties)
        if i == 0:
            tm.stats = _stats(kw["output_min"], kw["output_max"], "output")
        if i == labelled and label_file is not None:  # both are set together, from labels
            tm.associated_files = [label_file]
            if kw["score_threshold"] is not None:
                opts = ms.ScoreThresholdingOptions(global_score_threshold=float(kw["score_threshold"]))
                tm.process_units = [ms.ProcessUnit(options=opts)]
        out_md.append(tm)

    md = ms.ModelMetadata(
        name=kw["name"],
        description=kw["description"],
        version=kw["version"],
        subgraph_metadata=[ms.SubGraphMetadata(input_tensor_metadata=in_md, output_tensor_metadata=out_md)],
        author=kw["author"],
        license=kw["license"],
    )
    md.min_parser_version = ms.min_parser_version(md)
    return md, files


def _normalization(
    mean: Any, std: Any, preprocessing: Preprocessing | None
) -> tuple[list[float] | None, list[float] | None]:
    if preprocessing is not None:
        if mean is not None or std is not None:
            raise MetadataError(
                "both preprocessing and input_mean/input_std were given; expected one of them.",
                hint="Pass the normalization once.",
            )
        return list(preprocessing.mean), list(preprocessing.std)
    mean, std = _floats(mean, "input_mean"), _floats(std, "input_std")
    try:
        check_normalization(mean, std, what="input_")  # the one std rule (liteship.types)
    except DataError as e:
        raise MetadataError(e.message, hint=e.hint) from e
    if (mean is None) != (std is None):
        given, missing = ("input_mean", "input_std") if std is None else ("input_std", "input_mean")
        raise MetadataError(
            f"input normalization needs both input_mean and input_std; only {given} was given.",
            hint=f"Give {missing} too, e.g. input_mean=127.5 and input_std=127.5 for pixels scaled to -1..1.",
        )
    if mean is not None and std is not None and len(mean) != len(std) and 1 not in (len(mean), len(std)):
        raise MetadataError(
            f"input_mean has {len(mean)} values and input_std {len(std)}; expected equal counts or 1."
        )
    return mean, std


def _color_space(value: str | None, preprocessing: Preprocessing | None) -> ms.ColorSpaceType | None:
    if value is None:
        if preprocessing is not None and preprocessing.grayscale is not None:
            return ms.ColorSpaceType.GRAYSCALE if preprocessing.grayscale else ms.ColorSpaceType.RGB
        return None
    try:
        return ms.ColorSpaceType[value.upper()]
    except KeyError:
        raise MetadataError(
            f"color space {value!r} is not one of {[c.name for c in ms.ColorSpaceType]}."
        ) from None


def _labelled_output(outputs: list[_Tensor], count: int, loaded: fbm.LoadedModel) -> int:
    for i, t in enumerate(outputs):
        if t.shape and t.shape[-1] == count:
            return i
    dims = ", ".join(f"{t.name or i}: {t.shape[-1] if t.shape else '?'}" for i, t in enumerate(outputs))
    raise MetadataError(
        f"{count} labels given, but no output of {_where(loaded)} has {count} classes in its last "
        f"dimension ({dims}).",
        hint="Give one label per class, in class-index order.",
    )


def write_model_metadata(model: ModelSource, metadata: ms.ModelMetadata, files: dict[str, bytes]) -> bytes:
    """Store prepared metadata and its associated files in a model, replacing old ones.

    The lower-level half of :func:`write_metadata`, for metadata built by hand (any schema field).

    Args:
        model: A ``.tflite`` path, its bytes, or a :class:`~liteship.model.LoadedModel`.
        metadata: The ``ModelMetadata`` to store. ``min_parser_version`` is filled in when ``None``.
        files: Associated files to zip onto the model; every file the metadata names must be here.

    Returns:
        The new model bytes.

    Raises:
        MetadataError: The metadata names a file not given in ``files``.
    """
    loaded = _load(model)
    missing = [n for n in ms.named_files(metadata) if n not in files]
    if missing:
        raise MetadataError(
            f"the metadata names associated files {missing} that were not given; got {sorted(files)}.",
            hint="Pass every named file's content in files.",
        )
    if metadata.min_parser_version is None:
        metadata = dataclasses.replace(metadata, min_parser_version=ms.min_parser_version(metadata))
    # Repacking the model drops the old zip archive; set_metadata_entry then re-attaches nothing,
    # so no stale associated file survives, and an existing TFLITE_METADATA entry is replaced in place.
    bare = fbm.pack_model(loaded.model, loaded.data)
    data = fbm.attach_files(fbm.set_metadata_entry(bare, METADATA_ENTRY, ms.pack_metadata(metadata)), files)
    try:  # what we wrote must read back
        read_model_metadata(data)
    except (ModelError, MetadataError) as e:  # pragma: no cover - a bug in the writer
        raise MetadataError(f"the written metadata does not read back ({e}).") from e
    return data


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data)  # keeps a replaced file's mode; a model is not a secret
    except OSError as e:
        raise MetadataError(f"cannot write {str(path)!r}: {e.strerror or e}.", hint="Check the path.") from e


__all__ = [
    "METADATA_ENTRY",
    "MetadataReport",
    "associated_files",
    "labels_from_metadata",
    "metadata_report",
    "normalization_from_metadata",
    "read_metadata",
    "read_model_metadata",
    "write_metadata",
    "write_model_metadata",
]
