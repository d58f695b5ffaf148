"""``validate``: run a candidate and a reference over one dataset and compare (after Polygraphy's
``Comparator.run``).

Outputs are matched like this: outputs with the same name pair up; the rest pair in order (TFLite
renames outputs, e.g. Keras ``probs`` becomes ``StatefulPartitionedCall:0``), and each pair must have
the same shape. When the two models have different numbers of outputs, only same-name pairs are
compared — and if there are none, validation stops with a ValidationError listing both sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from liteship.data import Dataset
from liteship.errors import ValidationError
from liteship.model.preprocessing import declared_rule
from liteship.runtime.base import Runner
from liteship.types import Preprocessing

BATCH = 32


def label(source: Any, runner: Runner) -> str:
    return str(source) if isinstance(source, (str, Path)) else runner.name


def candidate_preprocessing(
    candidate: Any, runner: Runner, reference: Any = None, ref_runner: Runner | None = None
) -> tuple[Preprocessing, str]:
    """The one rule (:func:`liteship.model.preprocessing.declared_rule`) for both models: what the
    candidate declares (liteship's record, else its TFLite metadata), else what the reference .tflite
    declares, else identity. Returns ``(preprocessing, where from)``: ``"candidate metadata"`` (liteship's
    record), ``"candidate TFLite metadata"``, ``"reference metadata"``, ``"reference TFLite metadata"`` or
    ``"identity"``."""
    for who, model, run in (("candidate", candidate, runner), ("reference", reference, ref_runner)):
        data = _tflite_bytes(model, run)
        if data is None:
            continue
        rule = declared_rule(data)
        if rule.source != "none":
            return (
                rule.preprocessing,
                f"{who} {'metadata' if rule.source == 'liteship' else 'TFLite metadata'}",
            )
    return Preprocessing(), "identity"


def _tflite_bytes(model: Any, runner: Runner | None) -> bytes | None:
    data = getattr(runner, "model_bytes", None) if runner is not None else None
    if data is None and isinstance(model, (str, Path)) and str(model).endswith(".tflite"):
        data = Path(model).read_bytes()
    return data


def batches(dataset: Dataset, size: int = BATCH) -> Iterator[tuple[list[Any], list[int | None]]]:
    xs: list[Any] = []
    ys: list[int | None] = []
    for x, y in dataset:
        xs.append(x)
        ys.append(y)
        if len(xs) == size:
            yield xs, ys
            xs, ys = [], []
    if xs:
        yield xs, ys


def feed_for(runner: Runner, samples: list[Any]) -> dict[str, np.ndarray]:
    """Stack samples into one batch keyed by ``runner``'s input names.

    A sample is an array (one-input models), a list in input order, or a dict; dict keys are matched
    to input names exactly, then by containment (``image`` ↔ ``serving_default_image:0``), then in order.
    """
    specs = runner.input_specs
    first = samples[0]
    if isinstance(first, dict):
        keys = _match_keys(list(first), [s.name for s in specs])
        return {name: np.stack([s[key] for s in samples]) for key, name in keys.items()}
    if isinstance(first, (list, tuple)):
        return {spec.name: np.stack([s[i] for s in samples]) for i, spec in enumerate(specs)}
    if len(specs) != 1:
        raise ValidationError(
            f"the dataset gives one array per sample, but {runner.name} has {len(specs)} inputs.",
            hint="Give samples as {input name: array} dicts (a Python callable dataset).",
        )
    return {specs[0].name: np.stack(samples)}


def _match_keys(keys: list[str], names: list[str]) -> dict[str, str]:
    if len(keys) != len(names):
        raise ValidationError(f"dataset inputs {keys} do not match the model inputs {names}.")
    out = {k: k for k in keys if k in names}
    rest = [n for n in names if n not in out.values()]
    for k in keys:
        if k in out:
            continue
        hit = [n for n in rest if k in n or n in k]
        out[k] = hit[0] if len(hit) == 1 else rest[0]
        rest.remove(out[k])
    return out


def match_outputs(
    cand: dict[str, np.ndarray], ref: dict[str, np.ndarray], notes: list[str]
) -> list[tuple[str, str]]:
    """``[(candidate name, reference name)]`` following the module's matching rule."""
    pairs = [(n, n) for n in cand if n in ref]
    rest_c = [n for n in cand if n not in ref]
    rest_r = [n for n in ref if n not in cand]
    if rest_c and rest_r:
        if len(cand) == len(ref):
            pairs += list(zip(rest_c, rest_r, strict=True))
            notes.append(
                "outputs matched by order (names differ): "
                + ", ".join(f"{c!r} ↔ {r!r}" for c, r in zip(rest_c, rest_r, strict=True))
            )
        elif not pairs:
            raise ValidationError(
                f"cannot match outputs: the candidate has {list(cand)}, the reference {list(ref)}.",
                hint="Compare models with the same outputs (same names, or the same number in the same order).",
            )
    for c, r in pairs:
        if cand[c].shape != ref[r].shape:
            raise ValidationError(
                f"candidate output {c!r} has shape {list(cand[c].shape)}, reference output {r!r} "
                f"{list(ref[r].shape)}; they must match to be compared.",
                hint="Check that both models are the same network (and the reference is the source).",
            )
    return pairs
