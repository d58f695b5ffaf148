"""Choosing the variant to ship: the fastest (or smallest) that passes every gate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from liteship.types import ReportMixin


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
class Selection(ReportMixin):
    """``chosen`` is the variant; ``chosen_accelerator`` the accelerator of the chosen pair (``None``: the
    Interpreter)."""

    chosen: str | None
    objective: str
    verdicts: list[Verdict]
    chosen_accelerator: str | None = None

    @property
    def failures_by_recipe(self) -> dict[str, list[str]]:
        """Failing gates by pair label (the recipe alone on the Interpreter)."""
        return {pair_label(v.recipe, v.accelerator): v.failures for v in self.verdicts if not v.passed}


def check_gates(
    c: Candidate,
    *,
    max_accuracy_drop: float | None = None,
    min_agreement: float | None = None,
    max_latency_ms: float | None = None,
    max_size_mb: float | None = None,
    min_sqnr: float | None = None,
    min_accuracy: float | None = None,
) -> Verdict:
    """Check one candidate against the gates; every failing gate is listed with value and threshold."""
    failures: list[str] = []
    if max_accuracy_drop is not None and c.accuracy_drop is not None and c.accuracy_drop > max_accuracy_drop:
        failures.append(f"accuracy drop {c.accuracy_drop:.2f} points > max_accuracy_drop {max_accuracy_drop}")
    if min_accuracy is not None:
        if c.accuracy is None:
            failures.append(
                "accuracy was not measured (the validation data has no labels), but min_accuracy is set"
            )
        elif c.accuracy < min_accuracy:
            failures.append(
                f"top-1 accuracy {c.accuracy:.4f} < min_accuracy {min_accuracy}{_reference_note(c, min_accuracy)}"
            )
    if min_agreement is not None and c.agreement is not None and c.agreement < min_agreement:
        failures.append(f"top-1 agreement {c.agreement:.4f} < min_agreement {min_agreement}")
    if max_latency_ms is not None:
        if c.p50_ms is None:
            failures.append("latency was not measured, but max_latency_ms is set")
        elif c.p50_ms > max_latency_ms:
            failures.append(f"p50 latency {c.p50_ms:.3f} ms > max_latency_ms {max_latency_ms}")
    size_mb = c.size_bytes / 1e6
    if max_size_mb is not None and size_mb > max_size_mb:
        failures.append(f"size {size_mb:.3f} MB > max_size_mb {max_size_mb}")
    if min_sqnr is not None and c.sqnr_db is not None and c.sqnr_db < min_sqnr:
        failures.append(f"SQNR {c.sqnr_db:.1f} dB < min_sqnr {min_sqnr}")
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


def select_variant(
    candidates: Sequence[Candidate],
    *,
    objective: Literal["latency", "size"] = "latency",
    **gates: float | None,
) -> Selection:
    """Pick the variant to ship.

    Args:
        candidates: One per converted variant, or per (variant, accelerator) pair.
        objective: ``"latency"`` (lowest p50; size breaks ties) or ``"size"`` (smallest; p50 breaks ties).
        **gates: ``max_accuracy_drop``, ``min_agreement``, ``max_latency_ms``, ``max_size_mb``, ``min_sqnr``,
            ``min_accuracy``.

    Returns:
        A Selection; ``chosen`` is ``None`` when nothing passes (``failures_by_recipe`` says why).
    """
    verdicts = [check_gates(c, **gates) for c in candidates]
    passing = [c for c, v in zip(candidates, verdicts, strict=True) if v.passed]
    inf = float("inf")

    def key(c: Candidate) -> tuple[float, float]:
        lat = c.p50_ms if c.p50_ms is not None else inf
        return (lat, c.size_bytes) if objective == "latency" else (c.size_bytes, lat)

    best = min(passing, key=key) if passing else None
    return Selection(
        chosen=best.recipe if best else None,
        objective=objective,
        verdicts=verdicts,
        chosen_accelerator=best.accelerator if best else None,
    )


__all__ = ["Candidate", "Verdict", "Selection", "check_gates", "pair_label", "select_variant"]
