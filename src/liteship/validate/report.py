"""ValidationReport and the typed results nested in it. ``to_dict()`` gives JSON (inf/NaN → null)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liteship.types import ReportMixin


@dataclass(frozen=True)
class OutputStats(ReportMixin):
    """How one candidate output differs from its reference output, over every sample.

    Errors are taken over the elements that are finite in both models; NaN/Inf are counted apart.

    Attributes:
        name: The candidate's output name.
        reference_name: The reference output it was compared with.
        shape: Shape of one batch of this output as the candidate returns it (batch first).
        max_abs_error: ``max |cand − ref|``.
        mean_abs_error: ``mean |cand − ref|``.
        p50_abs_error: Median absolute error. ``p90_abs_error`` and ``p99_abs_error`` likewise.
        max_rel_error: ``max |cand − ref| / |ref|``, with ``|ref|`` floored at ``1e-9``.
        mean_rel_error: The mean of the same.
        cosine_similarity: Between the two outputs flattened over all samples (1.0 when both are 0).
        sqnr_db: ``10·log10(Σref² / Σ(ref − cand)²)``; ``inf`` (JSON ``null``) when they are identical.
        identical: Every element equal (and NaN/Inf in the same places).
        candidate_nan / candidate_inf / reference_nan / reference_inf: Non-finite element counts.
    """

    name: str
    reference_name: str
    shape: tuple[int, ...]
    max_abs_error: float
    mean_abs_error: float
    p50_abs_error: float
    p90_abs_error: float
    p99_abs_error: float
    max_rel_error: float
    mean_rel_error: float
    cosine_similarity: float
    sqnr_db: float
    identical: bool
    candidate_nan: int = 0
    candidate_inf: int = 0
    reference_nan: int = 0
    reference_inf: int = 0


@dataclass(frozen=True)
class Agreement(ReportMixin):
    """Classifier agreement of one output (rank 2, more than one class).

    Attributes:
        output: The candidate's output name.
        classes: Number of classes.
        top1: Fraction of samples where both models' argmax (first maximum, as ``np.argmax``) is equal.
        top5: Fraction where the reference's top-1 class is among the candidate's top-5 (top-k with
            ``k = min(5, classes)``).
        candidate_accuracy: Candidate top-1 accuracy against the labels (0..1), ``None`` without labels.
        reference_accuracy: Reference top-1 accuracy, ``None`` without labels.
        accuracy_drop: ``(reference − candidate) × 100`` in percentage points, ``None`` without labels.
    """

    output: str
    classes: int
    top1: float
    top5: float
    candidate_accuracy: float | None = None
    reference_accuracy: float | None = None
    accuracy_drop: float | None = None


@dataclass(frozen=True)
class GateResult(ReportMixin):
    """One gate on one output.

    Attributes:
        name: ``min_agreement``, ``max_accuracy_drop``, ``min_accuracy``, ``allclose`` or ``min_sqnr``.
        output: The candidate's output name.
        value: The measured value (``allclose``: ``max(|cand − ref| − rtol·|ref|)``, compared with atol).
        threshold: The limit.
        passed: Whether the gate holds.
    """

    name: str
    output: str
    value: float
    threshold: float
    passed: bool

    def describe(self) -> str:
        words = {
            "min_agreement": ("top-1 agreement", "<", "min_agreement"),
            "max_accuracy_drop": ("accuracy drop (points)", ">", "max_accuracy_drop"),
            "min_accuracy": ("top-1 accuracy", "<", "min_accuracy"),
            "allclose": ("max(|cand − ref| − rtol·|ref|)", ">", "atol"),
            "min_sqnr": ("SQNR (dB)", "<", "min_sqnr"),
        }
        what, op, limit = words.get(self.name, (self.name, "vs", "threshold"))
        op = op if not self.passed else {"<": "≥", ">": "≤"}.get(op, op)
        return f"output {self.output!r}: {what} {self.value:.6g} {op} {limit} {self.threshold:.6g}"


@dataclass(frozen=True)
class ConfidenceHistogram(ReportMixin):
    """The candidate's top-1 confidence over the samples, the reference distribution for drift checks.

    Attributes:
        output: The classifier output it was taken from.
        bins: Bin edges over [0, 1] (``len(counts) + 1``).
        counts: Samples per bin.
        softmax_applied: The output holds logits (for some rows, under the per-row rule), so softmax
            was applied first.
        scores: What decided it: ``"probabilities"`` or ``"logits"`` when the candidate's graph says
            (its output op), ``"per row"`` when it cannot (e.g. a Keras candidate) and the values did.
    """

    output: str
    bins: tuple[float, ...]
    counts: tuple[int, ...]
    softmax_applied: bool = False
    scores: str = "per row"


@dataclass(frozen=True)
class LayerStats(ReportMixin):
    """Quantization error of one tensor (QuantizationDebugger), for choosing layers to keep in float.

    Attributes:
        name: The tensor name; pass it in ``keep_float_layers`` to keep its op in float.
        op_name: The op that produces it (e.g. ``CONV_2D``).
        tensor_index: Tensor index in the debug model.
        rmse_over_scale: ``sqrt(mean_squared_error) / scale``: error in quantization steps, the rank key.
        mean_squared_error: Mean squared difference, float vs dequantized.
        max_abs_error: Largest absolute difference.
        mean_error: Mean (signed) difference.
        range: ``255 · scale``, the float range the int8 tensor covers.
        scale: Quantization scale. ``zero_point`` likewise.
    """

    name: str
    op_name: str
    tensor_index: int
    rmse_over_scale: float
    mean_squared_error: float
    max_abs_error: float
    mean_error: float
    range: float
    scale: float
    zero_point: int


@dataclass(frozen=True)
class ValidationReport(ReportMixin):
    """The result of :func:`liteship.validate.validate`.

    Attributes:
        candidate: Candidate label (path or model name). ``reference`` likewise.
        candidate_backend / reference_backend: Which runner ran each.
        data: The dataset's source.
        samples: Samples compared.
        has_labels: Whether accuracies could be computed.
        preprocessing: The preprocessing applied to the data, and ``preprocessing_from`` where it
            came from (``argument``, ``candidate metadata``, ``candidate TFLite metadata``, ``reference
            metadata``, ``reference TFLite metadata`` or ``identity``); ``preprocessing_rule`` says it in
            words, with how the data were read (``liteship.model.preprocessing``), e.g. ``"mean 127.5 std
            127.5 from the model's TFLite metadata; data read as raw pixels 0–255"``.
        outputs: Error statistics per matched output pair.
        agreement: Classifier agreement (and accuracies) per classifier output.
        gates: Every gate checked, passing or not.
        confidence_histogram: Of the first classifier output, or ``None``.
        layerwise: Per-tensor quantization error, worst first (``layerwise=True``), else empty.
        passed: Every gate passed.
        notes: What validation decided for you (output matching by order, softmax, runner warnings).
    """

    candidate: str
    reference: str
    candidate_backend: str
    reference_backend: str
    data: str
    samples: int
    has_labels: bool
    preprocessing: dict[str, Any]
    preprocessing_from: str
    outputs: tuple[OutputStats, ...]
    agreement: tuple[Agreement, ...]
    gates: tuple[GateResult, ...]
    confidence_histogram: ConfidenceHistogram | None = None
    layerwise: tuple[LayerStats, ...] = ()
    passed: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)
    preprocessing_rule: str = ""

    @property
    def failures(self) -> list[str]:
        """Every failing gate, one readable line each (value and threshold)."""
        return [g.describe() for g in self.gates if not g.passed]

    # the headline figures, typed: the first classifier's agreement and accuracies, the worst output
    @property
    def agreement_top1(self) -> float | None:
        return self.agreement[0].top1 if self.agreement else None

    @property
    def agreement_top5(self) -> float | None:
        return self.agreement[0].top5 if self.agreement else None

    @property
    def accuracy(self) -> float | None:
        """The candidate's top-1 accuracy (labelled data only)."""
        return self.agreement[0].candidate_accuracy if self.agreement else None

    @property
    def reference_accuracy(self) -> float | None:
        return self.agreement[0].reference_accuracy if self.agreement else None

    @property
    def accuracy_drop(self) -> float | None:
        """Points of accuracy lost against the reference (labelled data only)."""
        return self.agreement[0].accuracy_drop if self.agreement else None

    @property
    def sqnr_db(self) -> float | None:
        """The worst output's SQNR."""
        return min((o.sqnr_db for o in self.outputs), default=None)

    @property
    def max_abs_error(self) -> float | None:
        return max((o.max_abs_error for o in self.outputs), default=None)

    def summary(self) -> dict[str, Any]:
        """The headline figures as a dict (``report.json``, the CLI): the properties above."""
        return {
            "samples": self.samples,
            "passed": self.passed,
            "agreement_top1": self.agreement_top1,
            "agreement_top5": self.agreement_top5,
            "accuracy": self.accuracy,
            "reference_accuracy": self.reference_accuracy,
            "accuracy_drop": self.accuracy_drop,
            "sqnr_db": self.sqnr_db,
            "max_abs_error": self.max_abs_error,
            "confidence_histogram": self.confidence_histogram.to_dict()
            if self.confidence_histogram
            else None,
        }


__all__ = [
    "ValidationReport",
    "OutputStats",
    "Agreement",
    "GateResult",
    "ConfidenceHistogram",
    "LayerStats",
]
