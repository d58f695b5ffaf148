"""Run a .tflite on one input file (``.npy``/``.npz`` or an image) and rank the classes: ``liteship run``."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.data import IMAGE_SUFFIXES, load_image, load_numpy
from liteship.errors import DataError, LiteshipError, ModelError, UsageError
from liteship.model.flatbuffer import associated_files, load_model, read_liteship_info
from liteship.model.preprocessing import PIXELS, PreprocessingRule, check_data_fits
from liteship.runtime.compiled import CompiledModelRunner
from liteship.runtime.delegates import DelegateSpec, DelegateUsage
from liteship.runtime.factory import open_runner
from liteship.runtime.litert import LiteRTRunner
from liteship.types import Preprocessing, ReportMixin, check_normalization

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
        preprocessing: The normalization applied (``{"mean", "std", ...}``), or ``None``.
        preprocessing_source: ``"liteship"`` (the model's own record), ``"metadata"`` (TFLite metadata),
            ``"override"`` (``mean``/``std`` given), ``"raw pixels"`` (uint8 image input, fed as is),
            ``"disabled"`` (``preprocess=False``), ``"raw"`` (``raw=True``: arrays fed as they are) or
            ``"none"`` (the model declares none).
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
    accelerator: str | None = None
    fully_accelerated: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["outputs"] = {name: _describe(arr) for name, arr in self.outputs.items()}
        d["preprocessing_text"] = self.describe_preprocessing()
        return d

    def describe_preprocessing(self) -> str:
        """The one rule's words (:meth:`liteship.model.preprocessing.PreprocessingRule.describe`), e.g.
        ``"mean 0 std 16 from the model's liteship record"``, or how the input was fed without one."""
        if self.preprocessing_source not in _RULE_SOURCES:
            return _SOURCES.get(self.preprocessing_source, self.preprocessing_source)

        pre = Preprocessing.from_dict(self.preprocessing) if self.preprocessing else Preprocessing()
        read = PIXELS if Path(self.input).suffix.lower() in IMAGE_SUFFIXES else None
        return PreprocessingRule(pre, self.preprocessing_source).describe(read)


_RULE_SOURCES = ("liteship", "metadata", "override", "none")
_SOURCES = {
    "raw pixels": "none (uint8 pixels fed as they are)",
    "disabled": "none (turned off)",
    "raw": "none (raw: arrays fed in the model's own dtypes)",
}


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
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    preprocess: bool = True,
    accelerator: str | None = None,
) -> PredictionReport:
    """Run ``model`` on one input file and rank the first output's classes.

    Inputs are normalized as the model declares, as validation, benchmarks and calibration do:
    liteship's own record first, then standard TFLite metadata, else not at all. That holds for arrays
    (raw values, e.g. pixels 0..255) as for images; images are also resized to the model's input, and a
    uint8-quantized image input without a declaration gets the pixels as they are (as TFLite's task
    library does). Float inputs containing NaN or Inf are refused.

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
        mean: Normalization mean (one value or one per channel) replacing the model's declaration.
            Defaults to the model's (else 0).
        std: Normalization standard deviation (> 0) replacing the model's declaration. Defaults to the
            model's (else 1).
        preprocess: Normalize inputs as the model declares. ``False`` feeds arrays as they are, for
            inputs already normalized. Defaults to ``True``.
        accelerator: Run on LiteRT's CompiledModel API with this accelerator (``"cpu"``, ``"gpu"``,
            ``"gpu,cpu"``, ``"auto"``…). Defaults to ``None``: the Interpreter.

    Raises:
        UsageError: ``mean``/``std`` out of range, or given with ``preprocess=False`` or ``raw=True``.
        DataError: The input cannot be read, contains NaN/Inf, or does not fit the model.
        ModelError, InferenceError, DelegateError: From loading or running the model.
    """
    override = _override(mean, std, preprocess, raw)
    loaded = load_model(model)
    with _runner(
        model,
        num_threads=num_threads,
        delegates=delegates,
        delegate_fallback=delegate_fallback,
        raw=raw,
        signature=signature,
        accelerator=accelerator,
    ) as runner:
        feed, pre, pre_source = _read_input(Path(input), runner, loaded, override, preprocess)
        _check_finite(feed, input)
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
            delegates=runner.delegate_summary() if isinstance(runner, LiteRTRunner) else [],
            warnings=list(getattr(runner, "warnings", [])) + _undeclared(pre_source, Path(input), runner),
            accelerator=getattr(runner, "accelerator", None),
            fully_accelerated=runner.is_fully_accelerated()
            if isinstance(runner, CompiledModelRunner)
            else None,
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


def _runner(model: str | Path, **kwargs: Any) -> LiteRTRunner | CompiledModelRunner:
    """The runner (Interpreter, or CompiledModel for an accelerator), with the interpreter's glued
    sentences split apart."""
    try:
        return open_runner(model, **kwargs)  # type: ignore[return-value]
    except ModelError as e:
        # The interpreter ends its Flex message with a URL and starts "Node number …" right after it.
        e.message = re.sub(r"(?<=\S)(Node number \d)", r". \1", e.message)
        e.args = (e.message if not e.hint else f"{e.message} {e.hint}",)
        raise


def _override(mean: Any, std: Any, preprocess: bool, raw: bool) -> dict[str, tuple[float, ...]]:
    """The given ``mean``/``std`` as ``{"mean": …, "std": …}``, checked."""
    given = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
    if not given:
        return {}
    if not preprocess or raw:
        why = "preprocess=False" if not preprocess else "raw=True"
        raise UsageError(
            f"{' and '.join(given)} given with {why}, which feeds inputs as they are.",
            hint=f"Drop {why} to normalize with them, or drop {' and '.join(given)}.",
        )
    out = {}
    for name, value in given.items():
        values = tuple(float(v) for v in ((value,) if isinstance(value, (int, float, np.number)) else value))
        try:  # the one mean/std rule (liteship.types)
            check_normalization(values if name == "mean" else None, values if name == "std" else None)
        except DataError as e:
            raise UsageError(e.message, hint=e.hint) from e
        out[name] = values
    return out


def _undeclared(source: str, path: Path, runner: LiteRTRunner | CompiledModelRunner) -> list[str]:
    """The one rule's warning for an image fed as raw pixels to a float model that declares nothing."""
    if source != "none" or path.suffix.lower() not in IMAGE_SUFFIXES or len(runner.input_specs) != 1:
        return []

    rule = PreprocessingRule(Preprocessing(), "none")
    float_input = runner.input_specs[0].dtype.startswith("float")
    warning = check_data_fits(rule, PIXELS, 0.0, 255.0, where=f"image {str(path)!r}", float_input=float_input)
    return [warning] if warning else []


def _check_finite(feed: Any, input: str | Path) -> None:
    arrays = feed.items() if isinstance(feed, dict) else [("", feed)]
    for name, arr in arrays:
        arr = np.asarray(arr)
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            bad = int(np.sum(~np.isfinite(arr)))
            which = f" (array {name!r})" if name else ""
            raise DataError(
                f"input {str(input)!r}{which} contains NaN or Inf in {bad} of {arr.size} values; "
                "the model's output would be meaningless.",
                hint="Fix or drop those samples.",
            )


def _read_input(
    path: Path,
    runner: LiteRTRunner | CompiledModelRunner,
    loaded: Any,
    override: dict[str, Any],
    preprocess: bool,
) -> tuple[Any, Preprocessing | None, str]:
    if not path.is_file():
        state = "is a directory" if path.is_dir() else "does not exist"
        raise DataError(
            f"input {str(path)!r} {state}; expected a .npy/.npz file or an image.", hint="Check the path."
        )
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return _read_array(path, runner, loaded, override, preprocess)
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
    pre, source = _preprocessing(loaded, override) if preprocess else (None, "disabled")
    if pre is None and spec.quantized and spec.dtype == "uint8" and not runner.raw:
        pixels = load_image(path, None, spec.shape)
        return pixels.astype(np.uint8)[None], None, "raw pixels"
    x = load_image(path, pre, spec.shape)[None]
    return (x.astype(np.uint8) if runner.raw and spec.dtype == "uint8" else x), pre, source


def _read_array(
    path: Path,
    runner: LiteRTRunner | CompiledModelRunner,
    loaded: Any,
    override: dict[str, Any],
    preprocess: bool,
) -> tuple[Any, Preprocessing | None, str]:
    """An array input, normalized like an image (input 0 of a one-input model) unless told not to."""
    data = load_numpy(path)
    if isinstance(data, dict):
        if len(runner.input_specs) == 1 and "x" in data:
            data = data["x"]  # the dataset layout (x, optional y labels) validate uses
        elif len(data) == 1 and len(runner.input_specs) == 1:
            data = next(iter(data.values()))
    if runner.raw:
        return data, None, "raw"
    if not preprocess:
        return data, None, "disabled"
    pre, source = _preprocessing(loaded, override)
    if pre is None or pre.is_identity:
        return data, pre, source
    if not isinstance(data, np.ndarray) or len(runner.input_specs) != 1:
        raise DataError(
            f"the model declares preprocessing ({source}), which applies to one input; "
            f"{str(path)!r} holds several arrays.",
            hint="Normalize the arrays yourself and pass preprocess=False.",
        )
    if data.dtype.kind not in "fiub":
        raise DataError(f"{str(path)!r} holds {data.dtype} values; expected numbers.")
    channels = data.shape[-1] if data.ndim else 1
    for name in ("mean", "std"):
        n = len(getattr(pre, name))
        if n not in (1, channels):
            raise DataError(
                f"{name} has {n} values but the array {list(data.shape)} has {channels} channels "
                "(its last axis); expected 1 or one per channel."
            )
    return pre.normalize(data), pre, source


def _preprocessing(loaded: Any, override: dict[str, Any] | None = None) -> tuple[Preprocessing | None, str]:
    declared, source = _declared(loaded)
    if not override:
        return declared, source
    return dataclasses.replace(declared or Preprocessing(), **override), "override"


def _declared(loaded: Any) -> tuple[Preprocessing | None, str]:
    """What the model declares, by the one rule (:func:`liteship.model.preprocessing.declared_rule`)."""
    try:
        from liteship.model.preprocessing import declared_rule
    except ImportError:  # the metadata module is optional in a minimal build
        info = read_liteship_info(loaded)
        pre = info.get("preprocessing")
        return (Preprocessing.from_dict(pre), "liteship") if pre else (None, "none")
    rule = declared_rule(loaded)
    return (rule.preprocessing, rule.source) if rule.source != "none" else (None, "none")


def _labels(labels: str | Path | Sequence[str] | None, loaded: Any) -> tuple[list[str] | None, str | None]:
    if labels is not None and not isinstance(labels, (str, Path)):
        return list(labels), "list"
    if labels is not None:
        from liteship.data import read_labels  # the one label-file rule

        return read_labels(labels), "file"
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
            from liteship.data import parse_labels

            return parse_labels(content)
    return None


__all__ = ["predict", "rank", "PredictionReport", "TopK"]
