"""What a package carries for the fleet's drift check, computed outside the pipeline.

:func:`reference_histogram` runs the model (LiteRT) over validation data and returns the top-1
confidence histogram the server compares device telemetry against. It prepares the data the way the
device does (:func:`declared_preprocessing`, the one rule for "what preprocessing does this model
declare") and takes and bins the confidences with :mod:`liteship.confidence`, the rule the pipeline's
validation and the device agent's telemetry use; whether the output is probabilities or logits is read
from the model's graph (:func:`liteship.model.outputs.score_kind`), as the agent reads it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from liteship import confidence
from liteship.data import load_dataset
from liteship.errors import LiteshipError, PackageError
from liteship.model.flatbuffer import load_model, read_liteship_info
from liteship.model.outputs import score_kind
from liteship.model.preprocessing import PreprocessingRule, declared_rule
from liteship.runtime import LiteRTRunner
from liteship.types import Preprocessing

if TYPE_CHECKING:
    from liteship.model.preprocessing import PreprocessingRule

MAX_REFERENCE_SAMPLES = 10_000


def package_rule(model: bytes | str | os.PathLike, declared: Any = None) -> PreprocessingRule:
    """The one preprocessing rule of a packaged model, with where it came from: the manifest's
    ``model.preprocessing`` (liteship's record, copied from the model), else what the model declares
    (:func:`liteship.model.preprocessing.declared_rule`).

    Raises:
        MetadataError, DataError: A declaration exists but cannot be read.
    """
    if declared:
        return PreprocessingRule(Preprocessing.from_dict(declared), "liteship")
    return declared_rule(model if isinstance(model, bytes) else os.fspath(model))


def declared_preprocessing(model: bytes | str | os.PathLike, declared: Any = None) -> Preprocessing:
    """The preprocessing a model declares: liteship's record (``declared``, e.g. the manifest's
    ``model.preprocessing``), else the one rule of :func:`liteship.model.preprocessing.declared_rule`
    (the record in the model, its TFLite metadata's normalization), else identity.

    Raises:
        MetadataError, DataError: A declaration exists but cannot be read (a zero std, bad fields).
            Callers must not fall back to identity silently: un-normalized inputs give wrong answers.
    """
    return package_rule(model, declared).preprocessing


def reference_histogram(
    model: bytes | str | os.PathLike,
    data: Any,
    *,
    preprocessing: Preprocessing | None = None,
    limit: int | None = MAX_REFERENCE_SAMPLES,
) -> dict[str, Any]:
    """The model's top-1 confidence histogram over ``data``: ``{"bins", "counts", "output"}``.

    Args:
        model: The ``.tflite`` (path or bytes).
        data: Validation data: a ``.npz`` (``x``, optional ``y``), ``.npy``, an image folder, or an
            array (see :func:`liteship.data.load_dataset`).
        preprocessing: Defaults to what the model declares (:func:`declared_preprocessing`).
        limit: At most this many samples. Defaults to 10,000.

    Raises:
        PackageError: The data cannot be read or run, or the model has no classifier-like output.
    """
    loaded = load_model(model if isinstance(model, bytes) else os.fspath(model))
    try:
        pre = preprocessing or declared_preprocessing(
            loaded.data, read_liteship_info(loaded).get("preprocessing")
        )
        with LiteRTRunner(loaded.data, num_threads=1) as runner:
            spec, out = runner.input_specs[0], runner.output_specs[0]
            if len(runner.input_specs) != 1:
                raise PackageError(
                    f"reference data needs a one-input model; this one has {len(runner.input_specs)} inputs.",
                    hint="Pass reference_histogram computed by `liteship validate` instead.",
                )
            dataset = load_dataset(data, preprocessing=pre, input_shape=spec.shape, limit=limit)
            rows = []
            for x, _ in dataset:
                y = runner.infer({spec.name: np.asarray(x, dtype=np.float32)[None]})[out.name]
                rows.append(np.asarray(y, dtype=np.float64).reshape(-1))
    except PackageError:
        raise
    except LiteshipError as e:
        raise PackageError(f"cannot compute the reference histogram: {e}", hint=e.hint) from e
    if len(rows[0]) < 2:
        raise PackageError(
            f"output {out.name!r} has {len(rows[0])} value(s) per sample; a confidence histogram needs a "
            "classifier output (one score per class).",
        )
    kind = score_kind(loaded, out.name)  # the agent decides the same way for the same model
    counts = confidence.confidence_counts(confidence.top1_confidence(np.stack(rows), kind))
    return {"bins": list(confidence.bin_edges()), "counts": list(counts), "output": out.name}


__all__ = ["reference_histogram", "declared_preprocessing", "package_rule", "MAX_REFERENCE_SAMPLES"]
