"""Which ops to keep in float: a sensitivity search that measures what the gate measures.

The search is independent of how a "keep these ops float" model is built and of how it is judged:

* a :class:`FloatOpsBackend` lists the quantizable ops and builds a model keeping a given set of them in
  float (today :class:`~liteship.quantize.backends.DenylistBackend`, TFLite's converter with a denylist;
  ai-edge-quantizer's selective quantization fits the same two methods);
* an ``evaluate`` callable runs a model and returns a :class:`Measurement` with the gate's own figures.

Steps, each evaluation being one recorded round:

1. **Sensitivity.** For each op (or the ``probe`` worst by the converter's per-layer error, when there are
   more): keep only that op float; for the ``2 × beam`` leaders, quantize only that op. The score is the gate's metric: accuracy
   drop where there are labels, top-1 agreement for classifiers, output SQNR otherwise; equal scores
   (agreement on a few hundred samples moves in steps of one sample) are ordered by output SQNR.
2. **Greedy with re-evaluation.** Add ops one at a time; before each addition the ``beam`` best remaining
   ops are re-measured on top of the current set, and the one that helps most is added.
3. **Prune.** Try returning each float op to int8 (the last added first); keep it int8 when the gate holds.
4. **Proof.** Each op of the final set is removed once more: every removal failing the gate shows the set
   is minimal. A budget (rounds, seconds) can end any step: the result is then the best round so far,
   labelled as such.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from liteship.types import ReportMixin

Phase = Literal["base", "sensitivity", "quantize-only", "add", "prune", "proof"]


@dataclass(frozen=True)
class QuantizableOp:
    """One op the backend can keep in float: ``name`` is what ``build`` takes."""

    name: str
    op: str


class FloatOpsBackend(Protocol):
    """Builds integer models that keep a chosen set of ops in float."""

    def ops(self) -> list[QuantizableOp]:
        """The quantizable ops, in graph order."""
        ...

    def build(self, keep_float: Sequence[str]) -> bytes:
        """The model with ``keep_float`` (names from :meth:`ops`) in float and every other op quantized."""
        ...


@dataclass(frozen=True)
class Measurement(ReportMixin):
    """The gate's figures for one model. ``score``: higher is better (the pipeline gives the tightest normalised gate margin)."""

    passed: bool
    score: float
    metric: str
    accuracy: float | None = None
    accuracy_drop: float | None = None
    agreement: float | None = None
    sqnr_db: float | None = None
    p50_ms: float | None = None
    size_bytes: int | None = None
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Round(ReportMixin):
    """One evaluated model: which step, which op it concerned, the float set and its figures."""

    index: int
    phase: Phase
    layer: str | None
    float_layers: tuple[str, ...]
    effect: float | None  # score − the all-int8 score (normalised gate margin in the pipeline)
    measurement: Measurement
    seconds: float


@dataclass(frozen=True)
class Budget:
    """Ends the search: at most ``rounds`` evaluations, ``seconds`` of wall time."""

    rounds: int = 60
    seconds: float = 600.0


@dataclass(frozen=True)
class SearchResult(ReportMixin):
    """The outcome.

    Attributes:
        float_layers: The chosen float set (``()`` when the base passes).
        passed: Whether that set passes the gate.
        minimal: Proven: removing any one of its ops failed the gate (checked round by round).
        exhausted: The budget ended the search; the result is the best round so far.
        label: One line saying which of these it is.
        rounds: Every evaluation, in order.
        ranking: Ops by sensitivity (keep-only-that-op-float effect), most sensitive first.
    """

    float_layers: tuple[str, ...]
    passed: bool
    minimal: bool
    exhausted: bool
    label: str
    metric: str
    rounds: tuple[Round, ...]
    ranking: tuple[str, ...] = ()
    probed: int = 0
    total_ops: int = 0
    seconds: float = 0.0
    best_round: int | None = None


@dataclass
class _State:
    backend: FloatOpsBackend
    evaluate: Callable[[bytes, tuple[str, ...]], Measurement]
    budget: Budget
    progress: Callable[[Round], None]
    started: float = field(default_factory=time.perf_counter)
    rounds: list[Round] = field(default_factory=list)
    cache: dict[frozenset[str], Measurement] = field(default_factory=dict)
    base_score: float = 0.0

    def out_of_budget(self) -> bool:
        return (
            len(self.rounds) >= self.budget.rounds
            or time.perf_counter() - self.started >= self.budget.seconds
        )

    def measure(self, keep: Sequence[str], phase: Phase, layer: str | None) -> Measurement | None:
        key = frozenset(keep)
        if key in self.cache:
            return self.cache[key]
        if self.out_of_budget():
            return None
        t = time.perf_counter()
        ordered = tuple(keep)
        m = self.evaluate(self.backend.build(ordered), ordered)
        self.cache[key] = m
        effect = None if phase == "base" else m.score - self.base_score
        r = Round(len(self.rounds) + 1, phase, layer, ordered, effect, m, time.perf_counter() - t)
        self.rounds.append(r)
        self.progress(r)
        return m


class BudgetExhausted(Exception):
    pass


def search_float_layers(
    backend: FloatOpsBackend,
    evaluate: Callable[[bytes, tuple[str, ...]], Measurement],
    *,
    budget: Budget | None = None,
    prerank: Sequence[str] = (),
    probe: int = 24,
    beam: int = 3,
    start: Sequence[str] = (),
    progress: Callable[[Round], None] | None = None,
) -> SearchResult:
    """Find a minimal set of ops to keep in float so that ``evaluate`` passes.

    Args:
        backend: Builds the candidate models.
        evaluate: Judges one model (its bytes and float set) with the gate's own figures.
        budget: Ends the search. Defaults to ``Budget()`` (60 rounds, 600 s).
        prerank: Op names worst first by a cheap per-layer error (QuantizationDebugger); with more than
            ``probe`` ops only the ``probe`` first are measured one by one. Defaults to graph order.
        probe: Ops measured one by one at most. Defaults to 24.
        beam: Ops re-measured on top of the current set before each addition. Defaults to 3.
        start: A float set known to pass (a user's ``keep_float_layers``, an earlier run's result): when
            it does, the search skips to pruning it. Defaults to none.
        progress: Called after every round.

    Returns:
        A :class:`SearchResult` (``passed=False`` when no set within the budget passes).
    """
    st = _State(backend, evaluate, budget or Budget(), progress or (lambda _r: None))
    ops = [o.name for o in backend.ops()]
    base = st.measure((), "base", None)
    assert base is not None  # the budget allows one round at least
    st.base_score = base.score
    if base.passed:
        return _result(st, (), ops, [], 0, minimal=True, exhausted=False)
    order = [n for n in prerank if n in ops] + [n for n in ops if n not in prerank]
    probed = order[:probe]
    try:
        if start and _need(st.measure(list(start), "add", None)).passed:
            chosen = _prune(st, list(start))
            return _result(st, tuple(chosen), ops, [], 0, minimal=_prove(st, chosen), exhausted=False)
        ranking = _sensitivity(st, probed, ops, beam)
        chosen = _greedy(st, ranking, beam)
        chosen = _prune(st, chosen)
        minimal = _prove(st, chosen)
    except BudgetExhausted:
        best = _best_so_far(st)
        return _result(st, best, ops, _rank_so_far(st), len(probed), minimal=False, exhausted=True)
    return _result(st, tuple(chosen), ops, ranking, len(probed), minimal=minimal, exhausted=False)


def _need(m: Measurement | None) -> Measurement:
    if m is None:
        raise BudgetExhausted
    return m


def _closeness(m: Measurement | None) -> float:
    """The tie-breaker between equal scores: output SQNR against float (continuous, where agreement on a
    few hundred samples moves in steps of one sample)."""
    if m is None or m.sqnr_db is None or m.sqnr_db != m.sqnr_db:  # None or NaN
        return -math.inf
    return float(m.sqnr_db)


def _sensitivity(st: _State, probed: list[str], ops: list[str], beam: int) -> list[str]:
    effects: dict[str, tuple[float, float]] = {}
    for name in probed:
        m = _need(st.measure((name,), "sensitivity", name))
        effects[name] = (m.score, _closeness(m))
        if st.cache[frozenset((name,))].passed:
            return [name] + [n for n in probed if n != name]  # one op suffices: nothing to rank further
    first = sorted(probed, key=lambda n: (-effects[n][0], -effects[n][1], n))
    damage = {}
    # quantize only this op: the damage it does alone, the tie-breaker among the leaders (the ones the
    # greedy step will try first; measuring it for every probed op doubled the cost on MobileNetV2)
    for name in first[: 2 * beam]:
        alone = st.measure([n for n in ops if n != name], "quantize-only", name)
        if alone is None:
            break
        damage[name] = -alone.score
    return sorted(probed, key=lambda n: (-effects[n][0], -effects[n][1], -damage.get(n, 0.0), n))


def _greedy(st: _State, ranking: list[str], beam: int) -> list[str]:
    chosen: list[str] = []
    remaining = list(ranking)
    estimate: dict[str, tuple[float, float]] = {}
    for n in ranking:
        m = st.cache.get(frozenset((n,)))
        if m is not None and m.passed:  # the sensitivity step stopped at an op that suffices alone
            return [n]
        # ops the sensitivity step did not measure (more than ``probe``) come last
        estimate[n] = (m.score, _closeness(m)) if m is not None else (-math.inf, -math.inf)
    while remaining:
        trial = sorted(remaining, key=lambda n: (-estimate[n][0], -estimate[n][1]))[: max(1, beam)]
        scored = []
        for name in trial:  # re-evaluate on top of the current set
            m = _need(st.measure([*chosen, name], "add", name))
            estimate[name] = (m.score, _closeness(m))
            scored.append((not m.passed, -m.score, -_closeness(m), name))
        best = min(scored)[-1]
        chosen.append(best)
        remaining.remove(best)
        if st.cache[frozenset(chosen)].passed:
            return chosen
    return chosen


def _prune(st: _State, chosen: list[str]) -> list[str]:
    if not st.cache[frozenset(chosen)].passed:
        return chosen
    for name in list(reversed(chosen)):
        if len(chosen) == 1:
            break
        smaller = [n for n in chosen if n != name]
        if _need(st.measure(smaller, "prune", name)).passed:
            chosen = smaller
    return chosen


def _prove(st: _State, chosen: list[str]) -> bool:
    if not chosen or not st.cache[frozenset(chosen)].passed:
        return False
    for name in chosen:
        smaller = [n for n in chosen if n != name]
        if smaller == [] and st.cache[frozenset()].passed:
            return False
        if _need(st.measure(smaller, "proof", name)).passed:
            return False
    return True


def _best_so_far(st: _State) -> tuple[str, ...]:
    """A passing round with the fewest float ops (then the best score), else the best score."""
    passing = [r for r in st.rounds if r.measurement.passed]
    if passing:
        return min(passing, key=lambda r: (len(r.float_layers), -r.measurement.score)).float_layers
    return max(st.rounds, key=lambda r: (r.measurement.score, -len(r.float_layers))).float_layers


def _rank_so_far(st: _State) -> list[str]:
    single = [r for r in st.rounds if r.phase == "sensitivity" and r.layer]
    return [r.layer for r in sorted(single, key=lambda r: -r.measurement.score) if r.layer]


def _result(
    st: _State,
    chosen: Sequence[str],
    ops: list[str],
    ranking: list[str],
    probed: int,
    *,
    minimal: bool,
    exhausted: bool,
) -> SearchResult:
    final = st.cache[frozenset(chosen)]
    best = next((r.index for r in st.rounds if frozenset(r.float_layers) == frozenset(chosen)), None)
    if exhausted:
        label = (
            f"budget exhausted after {len(st.rounds)} rounds: best round so far (round {best}, "
            f"{len(chosen)} float op(s), {'passes' if final.passed else 'FAILS'} the gate; not proven minimal)"
        )
    elif not chosen:
        label = "the all-integer model passes: no op kept in float"
    elif final.passed:
        label = f"{len(chosen)} float op(s) pass the gate" + (
            "; minimal (each removal fails)" if minimal else ""
        )
    else:
        label = f"no float set passes the gate ({len(chosen)} op(s) tried in the greedy pass)"
    return SearchResult(
        float_layers=tuple(chosen),
        passed=final.passed,
        minimal=minimal,
        exhausted=exhausted,
        label=label,
        metric=final.metric,
        rounds=tuple(st.rounds),
        ranking=tuple(ranking),
        probed=probed,
        total_ops=len(ops),
        seconds=time.perf_counter() - st.started,
        best_round=best,
    )


__all__ = [
    "FloatOpsBackend",
    "QuantizableOp",
    "Measurement",
    "Round",
    "Budget",
    "SearchResult",
    "search_float_layers",
]
