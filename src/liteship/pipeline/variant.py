"""One variant of the model as the pipeline knows it: a single frozen record per name.

Every stage returns a new record (``dataclasses.replace``), so what a variant is — converted, benchmarked,
validated, failed, pruned — lives in one place instead of six dictionaries kept in step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from liteship.pipeline.gates import Candidate, Verdict
from liteship.pipeline.report import VariantResult
from liteship.pipeline.spec import VariantSpec

if TYPE_CHECKING:
    from liteship.bench.report import BenchEntry, BenchReport
    from liteship.convert.report import ConversionReport
    from liteship.validate.report import ValidationReport

LATENCY_SAMPLES_KEPT = 2000


@dataclass(frozen=True)
class AcceleratorPair:
    """One variant on one CompiledModel accelerator.

    Attributes:
        accelerator: As configured (``"gpu"``, ``"gpu,cpu"``, ``"cpu"``, ``"auto"``).
        ran_on: What LiteRT compiled for in the end (``"cpu"`` when ``gpu,cpu`` fell back).
        fully_accelerated: LiteRT's ``is_fully_accelerated()``.
        bench: Its benchmark (one entry per thread count).
        validation: Its outputs on that accelerator against the reference.
        error: Why the accelerator could not compile or run the variant (the pair is not a candidate).
    """

    accelerator: str
    ran_on: str | None = None
    fully_accelerated: bool | None = None
    bench: BenchReport | None = None
    validation: ValidationReport | None = None
    error: str | None = None


@dataclass(frozen=True)
class Variant:
    """A variant's whole state.

    Attributes:
        name: Unique in the run (``int8``, ``int8+eq``, ``int8+mixed``).
        spec: How it is made: recipe, I/O type, range setting, fixes, ops kept in float.
        conversion: The conversion report, once converted.
        bench: The benchmark report, once benchmarked.
        validation: The validation report, once validated.
        error: Why a stage failed, if one did.
        pruned: Why it got only a quick benchmark and a short validation, if it did.
        pairs: The variant on each CompiledModel accelerator of ``bench.accelerators``; the record's own
            ``bench`` and ``validation`` are the Interpreter's.
    """

    name: str
    spec: VariantSpec
    conversion: ConversionReport | None = None
    bench: BenchReport | None = None
    validation: ValidationReport | None = None
    error: str | None = None
    pruned: str | None = None
    pairs: tuple[AcceleratorPair, ...] = ()

    def replace(self, **changes: Any) -> Variant:
        return dataclasses.replace(self, **changes)

    @property
    def recipe(self) -> str:
        """The converter recipe it was made with."""
        return self.spec.recipe

    @property
    def float_layers(self) -> tuple[str, ...]:
        """Ops kept in float (``keep_float_layers``)."""
        return self.spec.keep_float

    @property
    def fixes(self) -> tuple[str, ...]:
        """The fixes applied (``float_io``, ``range_percentile``, ``equalize``, …), in the order they act."""
        return self.spec.fixes

    @property
    def measured(self) -> bool:
        """Converted, benchmarked and validated."""
        return self.conversion is not None and self.bench is not None and self.validation is not None

    def entry(self, threads: int | None) -> BenchEntry | None:
        """The benchmark entry at ``threads`` (else the last one)."""
        if self.bench is None:
            return None
        for e in self.bench.entries:
            if e.threads == threads:
                return e
        return self.bench.entries[-1] if self.bench.entries else None

    def summary(self) -> dict[str, Any]:
        """The validation headline figures (``ValidationReport.summary()``), ``{}`` before validation."""
        return self.validation.summary() if self.validation is not None else {}

    def candidate(self, threads: int | None) -> Candidate | None:
        """What selection needs, or ``None`` when not fully measured."""
        if not self.measured:
            return None
        assert self.conversion is not None
        assert self.validation is not None
        e = self.entry(threads)
        return Candidate.from_validation(
            self.name,
            self.validation,
            size_bytes=self.conversion.size_bytes,
            p50_ms=e.latency.p50_ms if e else None,
        )

    def pair_candidates(self, threads: int | None) -> list[Candidate]:
        """One candidate per measured (variant, accelerator) pair."""
        out = []
        for p in self.pairs:
            c = with_pair(self, p).candidate(threads)
            if c is not None:
                out.append(dataclasses.replace(c, accelerator=p.accelerator))
        return out

    def pair_results(
        self, verdicts: dict[tuple[str, str | None], Verdict], threads: int | None
    ) -> list[VariantResult]:
        """One ``report.json`` row per (variant, accelerator) pair; an accelerator that could not run the
        variant has ``ok`` false and the reason in ``error``."""
        return [
            dataclasses.replace(
                with_pair(self, p).result(verdicts.get((self.name, p.accelerator)), threads),
                accelerator=p.accelerator,
                ran_on=p.ran_on,
                fully_accelerated=p.fully_accelerated,
                path=self.conversion.output if self.conversion else None,
                size_bytes=self.conversion.size_bytes if self.conversion else None,
            )
            for p in self.pairs
        ]

    def result(self, verdict: Verdict | None, threads: int | None) -> VariantResult:
        """The variant as it appears in ``report.json``."""
        conv = self.conversion
        if conv is None or (self.error is not None and self.bench is None):
            why = self.error or "not run"
            return VariantResult(
                recipe=self.name, path=None, ok=False, error=why, gates_passed=False, failures=[why]
            )
        nums, e = self.summary(), self.entry(threads)
        latency = {
            str(x.threads): {
                "p50_ms": x.latency.p50_ms,
                "p95_ms": x.latency.p95_ms,
                "p99_ms": x.latency.p99_ms,
                "mean_ms": x.latency.mean_ms,
                "init_ms": x.init_ms,
            }
            for x in (self.bench.entries if self.bench else ())
        }
        return VariantResult(
            recipe=self.name,
            path=conv.output,
            ok=True,
            error=self.error,
            size_bytes=conv.size_bytes,
            ratio_to_float32=conv.ratio_to_float32,
            conversion_seconds=conv.conversion_seconds,
            accuracy=nums.get("accuracy"),
            reference_accuracy=nums.get("reference_accuracy"),
            accuracy_drop=nums.get("accuracy_drop"),
            agreement_top1=nums.get("agreement_top1"),
            agreement_top5=nums.get("agreement_top5"),
            sqnr_db=nums.get("sqnr_db"),
            max_abs_error=nums.get("max_abs_error"),
            validation_passed=nums.get("passed"),
            latency=latency,
            p50_ms=e.latency.p50_ms if e else None,
            p95_ms=e.latency.p95_ms if e else None,
            p99_ms=e.latency.p99_ms if e else None,
            init_ms=e.init_ms if e else None,
            gates_passed=verdict.passed if verdict else None,
            failures=verdict.failures if verdict else [],
            keep_float_layers=list(self.float_layers),
            graph_fixes=list(self.fixes),
            base_recipe=self.recipe,
            pruned=self.pruned,
            validation_samples=self.validation.samples if self.validation else None,
            warnings=list(conv.warnings),
            latency_samples_ms=thin(list(e.samples_ms)) if e else [],
            confidence_histogram=nums.get("confidence_histogram"),
        )


def with_pair(variant: Variant, pair: AcceleratorPair) -> Variant:
    """``variant`` as measured on ``pair``'s accelerator (its bench and validation), for the shared
    candidate and report-row code of :class:`~liteship.pipeline.variant.Variant`."""
    return dataclasses.replace(
        variant, bench=pair.bench, validation=pair.validation, error=pair.error, pairs=()
    )


def thin(samples: list[float], keep: int = LATENCY_SAMPLES_KEPT) -> list[float]:
    """At most ``keep`` latency samples, evenly spaced (enough for a histogram; keeps report.json small)."""
    if len(samples) <= keep:
        return samples
    step = len(samples) / keep
    return [samples[int(i * step)] for i in range(keep)]


__all__ = ["AcceleratorPair", "Variant", "thin", "with_pair"]
