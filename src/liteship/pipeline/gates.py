"""The gates a variant must pass to be shipped: what they are, their bounds in ``liteship.yaml``, and the
check with its failure messages.

Adding a gate is this file: a field of :class:`GatesConfig` (its default and bounds), the same field
on :class:`Gates`, its check in :meth:`Gates.check` (and, when it is an accuracy gate that a repair can
lift, in :meth:`Gates.accuracy`); ``liteship validate`` takes the same figure as a ``--min-…``/``--max-…``
flag in ``cli/validate.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from liteship.types import ReportMixin

if TYPE_CHECKING:
    from liteship.validate.report import ValidationReport


class GatesConfig(BaseModel):
    """``gates:`` in liteship.yaml."""

    model_config = ConfigDict(extra="forbid")

    max_accuracy_drop: float | None = Field(default=1.0, ge=0, description="points (0..100)")
    min_agreement: float | None = Field(default=0.98, ge=0, le=1)
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_size_mb: float | None = Field(default=None, gt=0)
    min_sqnr: float | None = None
    # an absolute floor (issue 22): the relative gates above pass a variant as bad as its reference
    min_accuracy: float | None = Field(default=None, ge=0, le=1, description="top-1 accuracy 0..1")


@dataclass(frozen=True)
class Candidate:
    """What selection needs to know about one converted variant."""

    recipe: str
    size_bytes: int
    p50_ms: float | None = None
    accuracy_drop: float | None = None  # points; None when no labels
    agreement: float | None = None  # top-1 agreement 0..1; None for non-classifiers
    accuracy: float | None = None  # the variant's own top-1 accuracy 0..1; None when no labels
    sqnr_db: float | None = None
    validation_passed: bool = True  # gates that validate itself checked (atol/rtol/…)
    accelerator: str | None = None  # the CompiledModel accelerator of a (variant, accelerator) pair

    @classmethod
    def from_summary(
        cls, recipe: str, summary: dict[str, Any], *, size_bytes: int, p50_ms: float | None = None
    ) -> Candidate:
        """A candidate from a ``ValidationReport.summary()``'s figures."""
        return cls(
            recipe=recipe,
            size_bytes=size_bytes,
            p50_ms=p50_ms,
            accuracy_drop=summary["accuracy_drop"],
            agreement=summary["agreement_top1"],
            accuracy=summary.get("accuracy"),
            sqnr_db=summary["sqnr_db"],
        )

    @classmethod
    def from_validation(
        cls, recipe: str, val: ValidationReport, *, size_bytes: int, p50_ms: float | None = None
    ) -> Candidate:
        """A candidate from a validation's headline figures."""
        return cls(
            recipe=recipe,
            size_bytes=size_bytes,
            p50_ms=p50_ms,
            accuracy_drop=val.accuracy_drop,
            agreement=val.agreement_top1,
            accuracy=val.accuracy,
            sqnr_db=val.sqnr_db,
        )

    @property
    def label(self) -> str:
        """``int8``, or ``float16 on gpu`` for a pair."""
        return pair_label(self.recipe, self.accelerator)


@dataclass(frozen=True)
class Verdict(ReportMixin):
    recipe: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    accelerator: str | None = None  # None: the Interpreter


def pair_label(recipe: str, accelerator: str | None) -> str:
    """How reports name a (variant, accelerator) pair: the recipe alone on the Interpreter."""
    return recipe if accelerator is None else f"{recipe} on {accelerator}"


@dataclass(frozen=True)
class Gates:
    """The thresholds a candidate is checked against (``None``: that gate is off)."""

    max_accuracy_drop: float | None = None
    min_agreement: float | None = None
    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    min_sqnr: float | None = None
    min_accuracy: float | None = None

    @classmethod
    def from_config(cls, cfg: GatesConfig) -> Gates:
        return cls(**cfg.model_dump())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Gates:
        """From a ``report.json``'s ``gates`` (unknown keys ignored)."""
        return cls(**{f.name: d.get(f.name) for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)

    def accuracy(self) -> Gates:
        """The accuracy gates alone, the ones a repair of quantization can lift: ``min_accuracy`` is left
        out (it is absolute, and no repair lifts the reference), as are latency and size."""
        return Gates(
            max_accuracy_drop=self.max_accuracy_drop, min_agreement=self.min_agreement, min_sqnr=self.min_sqnr
        )

    def check(self, c: Candidate) -> Verdict:
        """Check one candidate; every failing gate is listed with value and threshold."""
        failures: list[str] = []
        drop, floor = self.max_accuracy_drop, self.min_accuracy
        if drop is not None and c.accuracy_drop is not None and c.accuracy_drop > drop:
            failures.append(f"accuracy drop {c.accuracy_drop:.2f} points > max_accuracy_drop {drop}")
        if floor is not None:
            if c.accuracy is None:
                failures.append(
                    "accuracy was not measured (the validation data has no labels), but min_accuracy is set"
                )
            elif c.accuracy < floor:
                failures.append(
                    f"top-1 accuracy {c.accuracy:.4f} < min_accuracy {floor}{_reference_note(c, floor)}"
                )
        if self.min_agreement is not None and c.agreement is not None and c.agreement < self.min_agreement:
            failures.append(f"top-1 agreement {c.agreement:.4f} < min_agreement {self.min_agreement}")
        if self.max_latency_ms is not None:
            if c.p50_ms is None:
                failures.append("latency was not measured, but max_latency_ms is set")
            elif c.p50_ms > self.max_latency_ms:
                failures.append(f"p50 latency {c.p50_ms:.3f} ms > max_latency_ms {self.max_latency_ms}")
        size_mb = c.size_bytes / 1e6
        if self.max_size_mb is not None and size_mb > self.max_size_mb:
            failures.append(f"size {size_mb:.3f} MB > max_size_mb {self.max_size_mb}")
        if self.min_sqnr is not None and c.sqnr_db is not None and c.sqnr_db < self.min_sqnr:
            failures.append(f"SQNR {c.sqnr_db:.1f} dB < min_sqnr {self.min_sqnr}")
        if not c.validation_passed:
            failures.append("validation gates failed (see the validation report)")
        return Verdict(recipe=c.recipe, passed=not failures, failures=failures, accelerator=c.accelerator)


def _reference_note(c: Candidate, floor: float) -> str:
    """When the reference itself is below the floor, quantization is not what to fix."""
    if c.accuracy is None or c.accuracy_drop is None:
        return ""
    reference = c.accuracy + c.accuracy_drop / 100.0
    return (
        f" (the reference model scores {reference:.4f} too: check the model, its labels and its "
        "preprocessing (mean/std); quantization is not the cause)"
        if reference < floor
        else ""
    )


__all__ = ["Candidate", "Gates", "GatesConfig", "Verdict", "pair_label"]
