"""``validate()``: compare a candidate with its reference on a dataset, apply gates, report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from liteship.confidence import ScoreKind
from liteship.data import load_dataset
from liteship.errors import DataError, GateFailed, UsageError, ValidationError
from liteship.model.flatbuffer import read_liteship_info
from liteship.model.outputs import score_kind
from liteship.model.preprocessing import PreprocessingRule, check_dataset_fits
from liteship.progress import track
from liteship.runtime.base import Runner
from liteship.runtime.factory import open_runner
from liteship.runtime.reference import open_reference
from liteship.types import Preprocessing
from liteship.validate import metrics
from liteship.validate.comparator import (
    BATCH,
    batches,
    candidate_preprocessing,
    feed_for,
    label,
    match_outputs,
)
from liteship.validate.report import Agreement, GateResult, LayerStats, OutputStats, ValidationReport

LAYERWISE_SAMPLES = 200  # the debugger calibrates and runs on these; more adds time, not insight


def validate(
    candidate: str | Path | bytes | Runner,
    reference: Any,
    data: Any,
    *,
    limit: int | None = None,
    preprocessing: Preprocessing | dict[str, Any] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    min_agreement: float | None = None,
    max_accuracy_drop: float | None = None,
    min_sqnr: float | None = None,
    min_accuracy: float | None = None,
    layerwise: bool = False,
    layerwise_source: Any = None,
    progress: bool = True,
    raise_on_failure: bool = False,
    accelerator: str | None = None,
) -> ValidationReport:
    """Run ``candidate`` and ``reference`` over the same samples and compare every output.

    Outputs pair up by name, else in order (see :mod:`liteship.validate.comparator`).

    Args:
        candidate: The model under test: a .tflite path or bytes, any model ``reference`` accepts, or a
            built Runner.
        reference: What it should match: a ``.keras``/``.h5`` file, a SavedModel directory, a
            ``keras.Model``, a ``.tflite``, or a built Runner.
        data: An image folder (one sub-folder per class gives labels), a ``.npz`` with ``x`` and optional
            ``y``, a ``.npy``, an array, a callable or a Dataset.
        limit: Compare only the first ``limit`` samples. Defaults to all.
        preprocessing: Applied to the data. Defaults to what the candidate declared at conversion
            (liteship's record in the .tflite), else identity.
        atol: Gate: per output, ``|cand − ref| ≤ atol + rtol·|ref|`` everywhere. Defaults to off (0 when
            only ``rtol`` is set).
        rtol: See ``atol``. Defaults to off (0 when only ``atol`` is set).
        min_agreement: Gate: top-1 agreement (0..1) of every classifier output.
        max_accuracy_drop: Gate: accuracy drop in percentage points (needs labels).
        min_sqnr: Gate: SQNR in dB of every output.
        min_accuracy: Gate: the candidate's own top-1 accuracy (0..1) against the labels, an absolute
            floor: the relative gates pass a model that is as bad as its reference.
        layerwise: Also rank per-tensor quantization error (QuantizationDebugger); needs an
            integer-quantized candidate and its TensorFlow source. Defaults to ``False``.
        layerwise_source: The TensorFlow source for ``layerwise``. Defaults to the reference when it
            is one, else the source recorded in the candidate. The debugger re-quantizes the source,
            calibrating on the first 200 validation samples.
        progress: Draw a progress bar on a terminal. Defaults to ``True``.
        raise_on_failure: Raise :class:`~liteship.errors.GateFailed` when a gate fails.
        accelerator: Run a .tflite candidate on LiteRT's CompiledModel API with this accelerator
            (``"gpu"``, ``"gpu,cpu"``, ``"cpu"``, ``"auto"``…), so the report shows that accelerator's
            error against the reference (GPU kernels may compute in float16). The reference may be the
            same .tflite: it then runs on the Interpreter (CPU). Defaults to ``None``: the Interpreter.

    Returns:
        A :class:`ValidationReport`; ``report.passed`` tells whether every gate held.

    Raises:
        GateFailed: A gate failed and ``raise_on_failure`` is set; ``failures`` lists every one.
        UsageError: A threshold is out of range.
        ValidationError: The outputs cannot be matched, or a gate needs what the data lacks.
        DataError, ModelError, InferenceError: The data or a model cannot be used.

    Example:
        >>> report = liteship.validate("model.tflite", "model.keras", "val.npz",
        ...                            min_agreement=0.99)                  # doctest: +SKIP
        >>> report.agreement[0].top1                                         # doctest: +SKIP
        0.995
    """
    _check_thresholds(atol, rtol, min_agreement, max_accuracy_drop, min_accuracy)

    cand_runner = _candidate_runner(candidate, accelerator)
    try:
        ref_runner = open_reference(reference)
    except BaseException:
        _close_if_owned(cand_runner, candidate)
        raise
    try:
        return _compare(
            candidate, reference, data, cand_runner, ref_runner, limit, preprocessing,
            (atol, rtol, min_agreement, max_accuracy_drop, min_sqnr, min_accuracy),
            layerwise, layerwise_source, progress, raise_on_failure,
        )  # fmt: skip
    finally:
        _close_if_owned(cand_runner, candidate)
        _close_if_owned(ref_runner, reference)


def _candidate_runner(candidate: Any, accelerator: str | None) -> Runner:
    if accelerator is None:
        return open_reference(candidate)
    if isinstance(candidate, Runner):
        raise UsageError(
            "accelerator applies to a .tflite candidate, and a built Runner was given.",
            hint="Build the runner with the accelerator (CompiledModelRunner(path, accelerator=...)).",
        )
    is_tflite = isinstance(candidate, (bytes, bytearray)) or str(candidate).lower().endswith(".tflite")
    if not is_tflite:
        raise UsageError(
            f"accelerator applies to a .tflite candidate; {str(candidate)!r} is not one.",
            hint="Convert it first, or validate without an accelerator.",
        )

    return open_runner(candidate, accelerator=accelerator)


def _range_notes(cand: Runner, dataset: Any) -> list[str]:
    """Warn when the validation inputs lie far outside the range the candidate was calibrated on:
    usually a preprocessing mismatch, under which both models can agree while both are wrong."""
    data = getattr(cand, "model_bytes", None)
    if data is None:
        return []
    try:
        ranges = read_liteship_info(data).get("calibration", {}).get("range") or {}
    except Exception:  # an unreadable record is reported elsewhere; this is only a hint
        return []
    if not ranges:
        return []
    lo = min(r["min"] for r in ranges.values())
    hi = max(r["max"] for r in ranges.values())
    span = (hi - lo) or 1.0
    outside = 0
    for x, _ in dataset:
        values = np.concatenate([np.ravel(v) for v in x.values()]) if isinstance(x, dict) else np.ravel(x)
        if values.min() < lo - 0.1 * span or values.max() > hi + 0.1 * span:
            outside += 1
    if not outside:
        return []
    return [
        f"{outside} of {len(dataset)} validation samples lie outside the calibration range "
        f"[{lo:.4g}, {hi:.4g}] by more than 10 %: check the preprocessing (mean/std) — with the wrong "
        "normalization both models can agree while both are wrong."
    ]


def _score_kind(runner: Runner, output: str) -> ScoreKind | None:
    """What the runner's .tflite graph says ``output`` holds (probabilities or logits); None when the
    runner has no .tflite (a Keras/SavedModel candidate) or the graph cannot say."""
    model = getattr(runner, "model_bytes", None)  # LiteRT runners (Interpreter, CompiledModel, recorded)
    return score_kind(model, output) if model is not None else None


def _close_if_owned(runner: Runner, source: Any) -> None:
    if runner is not source:
        runner.close()


def _check_thresholds(*values: float | None) -> None:
    atol, rtol, min_agreement, max_drop, min_accuracy = values
    for name, v in (("atol", atol), ("rtol", rtol), ("max_accuracy_drop", max_drop)):
        if v is not None and (v < 0 or math.isnan(v)):
            raise UsageError(f"`{name}` must be ≥ 0, got {v}.")
    for name, v in (("min_agreement", min_agreement), ("min_accuracy", min_accuracy)):
        if v is not None and not 0.0 <= v <= 1.0:
            raise UsageError(
                f"`{name}` is a fraction of samples in [0, 1], got {v}.", hint="E.g. 0.99 for 99 %."
            )


def _compare(
    candidate: Any,
    reference: Any,
    data: Any,
    cand: Runner,
    ref: Runner,
    limit: int | None,
    preprocessing: Preprocessing | dict[str, Any] | None,
    thresholds: tuple[float | None, ...],
    layerwise: bool,
    layerwise_source: Any,
    progress: bool,
    raise_on_failure: bool,
) -> ValidationReport:
    if preprocessing is not None:
        pre = (
            preprocessing
            if isinstance(preprocessing, Preprocessing)
            else Preprocessing.from_dict(preprocessing)
        )
        pre_from = "argument"
    else:
        pre, pre_from = candidate_preprocessing(candidate, cand, reference, ref)
    notes: list[str] = []
    rule_text = _check_data_fits(pre, pre_from, data, cand, notes)
    dataset = load_dataset(data, preprocessing=pre, input_shape=cand.input_specs[0].shape, limit=limit)
    cand_out: dict[str, list[np.ndarray]] = {}
    ref_out: dict[str, list[np.ndarray]] = {}
    labels: list[int | None] = []
    n_batches = math.ceil(len(dataset) / BATCH)
    for xs, ys in track(batches(dataset), total=n_batches, description="validating", enabled=progress):
        for runner, store in ((cand, cand_out), (ref, ref_out)):
            for name, arr in runner.infer(feed_for(runner, xs)).items():
                store.setdefault(name, []).append(arr)
        labels += ys
    c_all = {k: np.concatenate(v) for k, v in cand_out.items()}
    r_all = {k: np.concatenate(v) for k, v in ref_out.items()}
    pairs = match_outputs(c_all, r_all, notes)
    for runner in (cand, ref):
        notes += [f"{runner.name}: {w}" for w in getattr(runner, "warnings", [])]
    notes += _range_notes(cand, dataset)
    y = np.asarray(labels, dtype=np.int64) if dataset.has_labels else None

    outputs = [metrics.output_stats(c, r, c_all[c], r_all[r]) for c, r in pairs]
    classifiers = [(c, r) for c, r in pairs if metrics.is_classifier(r_all[r])]
    if y is not None and classifiers:
        _check_labels(y, max(int(r_all[r].shape[1]) for _, r in classifiers), dataset.source)
    agreement = [metrics.agreement(c, c_all[c], r_all[r], y) for c, r in classifiers]
    histogram = None
    if classifiers:
        first = classifiers[0][0]
        histogram = metrics.confidence_histogram(first, c_all[first], kind=_score_kind(cand, first))
    gates = _gates(pairs, c_all, r_all, outputs, agreement, thresholds, has_labels=y is not None)

    layers: list[LayerStats] = []
    if layerwise:
        layers = _layerwise(candidate, cand, reference, ref, layerwise_source, dataset, feed_for)

    report = ValidationReport(
        candidate=label(candidate, cand),
        reference=label(reference, ref),
        candidate_backend=cand.backend,
        reference_backend=ref.backend,
        data=dataset.source,
        samples=len(dataset),
        has_labels=dataset.has_labels,
        preprocessing=pre.to_dict(),
        preprocessing_from=pre_from,
        outputs=tuple(outputs),
        agreement=tuple(agreement),
        gates=tuple(gates),
        confidence_histogram=histogram,
        layerwise=tuple(layers),
        passed=all(g.passed for g in gates),
        notes=tuple(notes),
        preprocessing_rule=rule_text,
    )
    if raise_on_failure and not report.passed:
        failing = report.failures
        raise GateFailed(
            f"{len(failing)} validation gate(s) failed for {report.candidate} against {report.reference}:",
            failures=failing,
            report=report,
        )
    return report


def _check_labels(y: np.ndarray, classes: int, source: str) -> None:
    """Refuse labels no output class can match: accuracy against them is 0 % by construction.

    A label outside ``[0, classes)`` (a 1-based class list, a stray 99, a −1 "unknown") would otherwise
    give a silent 0 % accuracy and a drop that says nothing about the candidate.
    """
    bad = (y < 0) | (y >= classes)
    if not np.any(bad):
        return
    values = sorted({int(v) for v in np.unique(y[bad])})
    shown = ", ".join(str(v) for v in values[:8]) + (", …" if len(values) > 8 else "")
    raise DataError(
        f"{int(np.sum(bad))} of {len(y)} labels in {source} are outside the model's classes "
        f"0..{classes - 1} (found {shown}); accuracy against them would be 0 % whatever the model does.",
        hint="Give labels as 0-based class indices of the model's output, or drop the labels (a .npz "
        "without `y`) to compare agreement only.",
    )


def _gates(
    pairs: list[tuple[str, str]],
    c_all: dict[str, np.ndarray],
    r_all: dict[str, np.ndarray],
    outputs: list[OutputStats],
    agreement: list[Agreement],
    thresholds: tuple[float | None, ...],
    *,
    has_labels: bool,
) -> list[GateResult]:
    atol, rtol, min_agreement, max_drop, min_sqnr, min_accuracy = thresholds
    gates: list[GateResult] = []
    if (min_agreement is not None or max_drop is not None or min_accuracy is not None) and not agreement:
        raise ValidationError(
            "min_agreement/max_accuracy_drop/min_accuracy apply to classifier outputs (batch, classes), "
            f"and the models have none (outputs: {[c for c, _ in pairs]}).",
            hint="Use atol/rtol or min_sqnr for other outputs.",
        )
    for name, v in (("max_accuracy_drop", max_drop), ("min_accuracy", min_accuracy)):
        if v is None or has_labels:
            continue
        raise ValidationError(
            f"{name} needs labels, and the dataset has none.",
            hint="Use a .npz with `y`, or an image folder with one sub-folder per class; or use min_agreement.",
        )
    for a in agreement:
        if min_agreement is not None:
            gates.append(
                GateResult("min_agreement", a.output, a.top1, min_agreement, a.top1 >= min_agreement)
            )
        if min_accuracy is not None and a.candidate_accuracy is not None:
            acc = a.candidate_accuracy
            gates.append(GateResult("min_accuracy", a.output, acc, min_accuracy, acc >= min_accuracy))
        if max_drop is not None and a.accuracy_drop is not None:
            gates.append(
                GateResult(
                    "max_accuracy_drop", a.output, a.accuracy_drop, max_drop, a.accuracy_drop <= max_drop
                )
            )
    if atol is not None or rtol is not None:
        a_tol, r_tol = atol or 0.0, rtol or 0.0
        for c, r in pairs:
            excess = metrics.allclose_excess(c_all[c], r_all[r], r_tol)
            gates.append(GateResult("allclose", c, excess, a_tol, excess <= a_tol))
    if min_sqnr is not None:
        for o in outputs:
            gates.append(GateResult("min_sqnr", o.name, o.sqnr_db, min_sqnr, o.sqnr_db >= min_sqnr))
    return gates


def _layerwise(
    candidate: Any, cand: Runner, reference: Any, ref: Runner, source: Any, dataset: Any, feed: Any
) -> list[LayerStats]:
    from liteship.validate.layerwise import layerwise_stats, tf_source_of

    model = getattr(cand, "model_bytes", None)
    if model is None:
        raise ValidationError("layerwise statistics need a .tflite candidate.", hint="Set layerwise=False.")
    info = read_liteship_info(model)
    if source is None:
        source = tf_source_of(reference, ref, info)
    samples = []
    for x, _ in dataset.take(LAYERWISE_SAMPLES):
        fed = feed(cand, [x])
        samples.append([fed[s.name].astype(np.float32) for s in cand.input_specs])
    return layerwise_stats(model, source, samples, recipe=info.get("recipe"))


__all__ = ["validate"]


_RULE_SOURCES = {"argument": "override", "identity": "none"}


def _check_data_fits(pre: Preprocessing, pre_from: str, data: Any, cand: Runner, notes: list[str]) -> str:
    """The rule shared with convert and the pipeline: data that do not fit it are an error (already
    normalized floats for a rule that expects pixels) or a note; the rule applied is noted."""
    source = _RULE_SOURCES.get(pre_from, "metadata" if "TFLite" in pre_from else "liteship")
    rule = PreprocessingRule(pre, source)
    float_input = bool(cand.input_specs) and cand.input_specs[0].dtype.startswith("float")
    read, warning = check_dataset_fits(
        rule, data, where=f"validation data {str(data)!r}", float_input=float_input
    )
    if warning:
        notes.append(warning)
    return f"{rule.describe(read)} ({pre_from})"
