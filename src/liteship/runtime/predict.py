"""Run a .tflite on one input file (``.npy``/``.npz`` or an image) and rank the classes: ``liteship run``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.errors import DataError, LiteshipError
from liteship.model.flatbuffer import associated_files, load_model, read_liteship_info
from liteship.runtime.delegates import DelegateSpec, DelegateUsage
from liteship.runtime.litert import LiteRTRunner
from liteship.types import Preprocessing, ReportMixin

SMALL_OUTPUT = 64  # outputs up to this many values are listed in the report itself


@dataclass(frozen=True)
class TopK(ReportMixin):
    """One ranked class of one sample."""

    sample: int
    rank: int
    index: int
    score: float
    label: str | None


@dataclass(frozen=True)
class PredictionReport(ReportMixin):
    """What ``liteship run`` did and got.

    Attributes:
        outputs: ``{name: array}`` (dequantized unless ``raw``); in :meth:`to_dict` only shape, dtype,
            range and, for small outputs, the values.
        preprocessing_source: ``"liteship"`` (the model's own record), ``"metadata"`` (TFLite metadata),
            ``"raw pixels"`` (uint8 image input, fed as is), ``"none"`` or ``"array"`` (a .npy input).
        labels_source: ``"file"``, ``"metadata"`` or ``None``.
    """

    model: str
    backend: str
    input: str
    input_shape: list[int]
    preprocessing: dict[str, Any] | None
    preprocessing_source: str
    latency_ms: float
    outputs: dict[str, np.ndarray]
    top_k: list[TopK]
    labels_source: str | None
    delegates: list[DelegateUsage]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["outputs"] = {name: _describe(arr) for name, arr in self.outputs.items()}
        return d


def _describe(arr: np.ndarray) -> dict[str, Any]:
    d: dict[str, Any] = {"shape": list(arr.shape), "dtype": str(arr.dtype)}
    if arr.size:
        d["min"], d["max"] = arr.min().item(), arr.max().item()
    if arr.size <= SMALL_OUTPUT:
        d["values"] = arr.tolist()
    return d


def predict(
    model: str | Path,
    input: str | Path,
    *,
    top_k: int = 5,
    labels: str | Path | Sequence[str] | None = None,
    num_threads: int | None = None,
    delegates: Sequence[DelegateSpec | str | Path] = (),
    delegate_fallback: bool = False,
    raw: bool = False,
    signature: str | None = None,
) -> PredictionReport:
    """Run ``model`` on one input file and rank the first output's classes.

    Images are resized to the model's input and normalized as the model declares: liteship's own record
    first, then standard TFLite metadata, else not at all (a uint8-quantized input gets the pixels as
    they are, as TFLite's task library does).

    Args:
        model: A .tflite file.
        input: ``.npy`` (one array), ``.npz`` (arrays named like the inputs) or an image file.
        top_k: Classes to rank per sample; 0 for none. Defaults to 5.
        labels: A labels file (one per line) or a list. Defaults to the labels in the model's metadata.
        num_threads: CPU threads. Defaults to the number of cores.
        delegates: External delegates (see :class:`~liteship.runtime.LiteRTRunner`).
        delegate_fallback: Run on CPU when a delegate fails. Defaults to ``False``.
        raw: Feed and return the model's own dtypes. Defaults to ``False``.
        signature: Signature key to run. Defaults to the main graph.

    Raises:
        DataError: The input cannot be read or does not fit the model.
        ModelError, InferenceError, DelegateError: From loading or running the model.
    """
    loaded = load_model(model)
    with LiteRTRunner(
        loaded.data,
        num_threads=num_threads,
        delegates=delegates,
        delegate_fallback=delegate_fallback,
        raw=raw,
        signature=signature,
    ) as runner:
        runner.name = Path(model).name
        feed, pre, pre_source = _read_input(Path(input), runner, loaded)
        start = time.perf_counter()
        outputs = runner.infer(feed)
        latency_ms = (time.perf_counter() - start) * 1e3
        names, labels_source = _labels(labels, loaded)
        first = next(iter(outputs.values()))
        return PredictionReport(
            model=str(model),
            backend=runner.backend,
            input=str(input),
            input_shape=list(next(iter(feed.values())).shape) if isinstance(feed, dict) else list(feed.shape),
            preprocessing=pre.to_dict() if pre is not None else None,
            preprocessing_source=pre_source,
            latency_ms=latency_ms,
            outputs=outputs,
            top_k=rank(first, top_k, names),
            labels_source=labels_source if names else None,
            delegates=runner.delegate_summary(),
            warnings=list(runner.warnings),
        )


def rank(scores: np.ndarray, k: int, labels: Sequence[str] | None = None) -> list[TopK]:
    """The ``k`` best classes of each sample of a ``(batch, classes)`` or ``(classes,)`` output.

    Returns ``[]`` for outputs that are not class scores (other ranks, or a single value).
    """
    scores = np.asarray(scores)
    if scores.ndim == 1:
        scores = scores[None]
    if k <= 0 or scores.ndim != 2 or scores.shape[1] < 2:
        return []
    result = []
    for sample, row in enumerate(scores):
        order = np.argsort(-row.astype(np.float64), kind="stable")[:k]
        for r, i in enumerate(order, start=1):
            label = labels[i] if labels is not None and i < len(labels) else None
            result.append(TopK(sample, r, int(i), float(row[i]), label))
    return result


def _read_input(path: Path, runner: LiteRTRunner, loaded: Any) -> tuple[Any, Preprocessing | None, str]:
    from liteship.data import IMAGE_SUFFIXES, load_image

    if not path.is_file():
        raise DataError(f"input file {str(path)!r} does not exist.", hint="Check the path.")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read {str(path)!r} as a numpy file: {e}.") from e
        if suffix == ".npz":
            data = dict(data)
            if len(data) == 1 and len(runner.input_specs) == 1:
                data = next(iter(data.values()))
        return data, None, "array"
    if suffix not in IMAGE_SUFFIXES:
        raise DataError(
            f"input {str(path)!r} is neither a numpy file nor an image.",
            hint=f"Use .npy, .npz or one of {', '.join(IMAGE_SUFFIXES)}.",
        )
    if len(runner.input_specs) != 1 or len(runner.input_specs[0].shape) != 4:
        specs = "; ".join(s.describe() for s in runner.input_specs)
        raise DataError(
            f"an image needs a model with one (batch, height, width, channels) input; this one has {specs}.",
            hint="Pass the input as a .npy/.npz file instead.",
        )
    spec = runner.input_specs[0]
    pre, source = _preprocessing(loaded)
    if pre is None and spec.quantized and spec.dtype == "uint8" and not runner.raw:
        pixels = load_image(path, None, spec.shape)
        return pixels.astype(np.uint8)[None], None, "raw pixels"
    x = load_image(path, pre, spec.shape)[None]
    return (x.astype(np.uint8) if runner.raw and spec.dtype == "uint8" else x), pre, source


def _preprocessing(loaded: Any) -> tuple[Preprocessing | None, str]:
    info = read_liteship_info(loaded)
    if info.get("preprocessing"):
        return Preprocessing.from_dict(info["preprocessing"]), "liteship"
    try:
        from liteship.model.metadata import normalization_from_metadata
    except ImportError:  # the metadata module is optional in a minimal build
        return None, "none"
    pre = normalization_from_metadata(loaded)
    return (pre, "metadata") if pre is not None else (None, "none")


def _labels(labels: str | Path | Sequence[str] | None, loaded: Any) -> tuple[list[str] | None, str | None]:
    if labels is not None and not isinstance(labels, (str, Path)):
        return list(labels), "list"
    if labels is not None:
        try:
            text = Path(labels).read_text(encoding="utf-8-sig")
        except OSError as e:
            raise DataError(f"cannot read labels file {str(labels)!r}: {e}.", hint="Check the path.") from e
        return [line.rstrip("\r") for line in text.rstrip("\r\n").split("\n")], "file"
    try:
        from liteship.model.metadata import labels_from_metadata
    except ImportError:
        return _labels_from_zip(loaded), "metadata"
    try:
        return labels_from_metadata(loaded), "metadata"
    except LiteshipError:
        return _labels_from_zip(loaded), "metadata"


def _labels_from_zip(loaded: Any) -> list[str] | None:
    """Without the metadata reader: the first ``*.txt`` zipped onto the model, if any."""
    for name, content in sorted(associated_files(loaded.data).items()):
        if name.lower().endswith(".txt"):
            return content.decode("utf-8-sig", errors="replace").splitlines()
    return None


__all__ = ["predict", "rank", "PredictionReport", "TopK"]
