"""Choosing the variant to ship: the fastest (or smallest) that passes every gate (``pipeline/gates.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from liteship.pipeline.gates import Candidate, Gates, Verdict, pair_label
from liteship.types import ReportMixin

if TYPE_CHECKING:
    from liteship.pipeline.context import RunContext


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


def select_candidates(ctx: RunContext) -> Selection:
    """The selection stage: over every (variant, accelerator) pair — the Interpreter's (when
    ``bench.accelerators`` lists it, as by default) and each CompiledModel accelerator's."""
    t = ctx.selection_threads
    interp = None in ctx.cfg.bench.accelerators
    cands = [c for v in ctx.variants.values() if interp and (c := v.candidate(t))]
    cands += [c for v in ctx.variants.values() for c in v.pair_candidates(t)]
    sel = select_variant(cands, objective=ctx.cfg.objective, gates=ctx.gates)
    if sel.chosen:
        ctx.log(
            f"[bold green]select[/] {pair_label(sel.chosen, sel.chosen_accelerator)} ({ctx.cfg.objective}; "
            f"{sum(v.passed for v in sel.verdicts)}/{len(sel.verdicts)} candidates pass the gates)"
        )
    else:
        ctx.log("[bold red]select[/] no variant passes the gates")
    return sel


def check_gates(c: Candidate, **gates: float | None) -> Verdict:
    """``Gates(**gates).check(c)``: check one candidate against the gates given by keyword."""
    return Gates(**gates).check(c)


def select_variant(
    candidates: Sequence[Candidate],
    *,
    objective: Literal["latency", "size"] = "latency",
    gates: Gates | None = None,
    **thresholds: float | None,
) -> Selection:
    """Pick the variant to ship.

    Args:
        candidates: One per converted variant, or per (variant, accelerator) pair.
        objective: ``"latency"`` (lowest p50; size breaks ties) or ``"size"`` (smallest; p50 breaks ties).
        gates: The :class:`~liteship.pipeline.gates.Gates`; or give them by keyword (``thresholds``:
            ``max_accuracy_drop``, ``min_agreement``, ``max_latency_ms``, ``max_size_mb``, ``min_sqnr``,
            ``min_accuracy``).

    Returns:
        A Selection; ``chosen`` is ``None`` when nothing passes (``failures_by_recipe`` says why).
    """
    if gates is not None and thresholds:
        raise TypeError("give the gates either as a Gates or by keyword, not both")
    g = gates if gates is not None else Gates(**thresholds)
    verdicts = [g.check(c) for c in candidates]
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


__all__ = [
    "Candidate",
    "Gates",
    "Verdict",
    "Selection",
    "check_gates",
    "pair_label",
    "select_variant",
    "select_candidates",
]
