"""``RunContext``: what every stage of one pipeline run shares — the config, the output paths, the
reference runner, the preprocessing rule, the datasets (read once), the log, the timings and the variants
made so far — with typed methods the stages call (``validate``, ``bench``, ``timed``, …).

The stages are modules of their own (``prepare``, ``measure``, ``repair``, ``select``, ``ship``); each
takes the context and returns a typed value; ``run.py`` is their sequence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from liteship.bench import benchmark
from liteship.pipeline.config import PipelineConfig
from liteship.pipeline.gates import Gates
from liteship.pipeline.spec import VariantSpec
from liteship.pipeline.variant import Variant
from liteship.runtime.base import Runner
from liteship.validate import validate

if TYPE_CHECKING:
    from liteship.bench.report import BenchReport
    from liteship.data import Dataset
    from liteship.model.preprocessing import PreprocessingRule
    from liteship.validate.report import ValidationReport

QUICK_RUNS = 10  # runs of a quick benchmark (a pruned variant, a search round)
CALIBRATION_SAMPLES = 200  # when calibration.samples is not set
Log = Callable[[str], None]
T = TypeVar("T")


class RunContext:
    """One pipeline run's shared state and the typed operations on it.

    Attributes:
        cfg: The configuration.
        log: Receives one line per stage step.
        progress: Draw progress bars for long steps.
        out: The output folder (``variants/``, ``report.json``, ``report.html``, the package).
        source: The source model's path (or ``module.py:factory`` spec).
        rule: The preprocessing rule every stage applies, and where it came from.
        gates: The gates of ``cfg.gates``.
        variants: Every variant made so far, by name, in the order they were made.
        exported: What the recipes convert (a Keras file's SavedModel export, else the source).
        reference: The reference runner the variants are validated against.
        stage_seconds: Wall time per stage, for the report.
        measure_seconds: Bench + validation time per variant (the repair's budget).
        warnings: Collected for the report.
    """

    def __init__(self, cfg: PipelineConfig, log: Log, progress: bool, rule: PreprocessingRule) -> None:
        self.cfg, self.log, self.progress = cfg, log, progress
        out = cfg.path(cfg.output)
        assert out is not None
        self.out: Path = out
        self.source: Path = cfg.path(cfg.source)
        self.rule = rule
        self.rule_text = rule.describe()
        self.source_normalization: dict[str, Any] | None = None
        self.gates = Gates.from_config(cfg.gates)
        self.threads = list(cfg.bench.threads)
        self.selection_threads: int | None = max(self.threads) if self.threads else None
        self.stage_seconds: dict[str, float] = {}
        self.measure_seconds: dict[str, float] = {}
        self.started = time.perf_counter()
        self.warnings: list[str] = []
        self.variants: dict[str, Variant] = {}
        self.exported: Path = self.source
        self._reference: Runner | None = None
        self.input_shape: tuple[int, ...] | None = None
        self._validation: Dataset | None = None
        self._calibration: Dataset | None = None

    @property
    def reference(self) -> Runner:
        """The reference runner (set by the prepare stage)."""
        if self._reference is None:
            raise RuntimeError("the reference runner is not loaded yet (pipeline.prepare sets it)")
        return self._reference

    @reference.setter
    def reference(self, runner: Runner) -> None:
        self._reference = runner

    @property
    def pre(self) -> Any:
        """The :class:`~liteship.types.Preprocessing` of the rule."""
        return self.rule.preprocessing

    def timed(self, stage: str, fn: Callable[[], T]) -> T:
        """Run ``fn``, adding its wall time to ``stage`` in the report."""
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + time.perf_counter() - t

    def warn(self, message: str) -> None:
        """A warning for the report (not logged: the caller logs it its own way)."""
        self.warnings.append(message)

    # -- variants -----------------------------------------------------------------------------------------
    def path_of(self, name: str) -> Path:
        return self.out / "variants" / f"{name}.tflite"

    def variant(self, name: str) -> Variant:
        """The variant ``name``; a variant never made is reported as "not run"."""
        return self.variants.get(name) or Variant(name, VariantSpec(name), error="not run")

    def all_names(self) -> list[str]:
        """The configured recipes, then every other variant made (the repair's), in order."""
        return list(dict.fromkeys([*self.cfg.recipes, *self.variants]))

    def discard(self, name: str) -> None:
        """Forget a variant and delete its file."""
        self.variants.pop(name, None)
        self.path_of(name).unlink(missing_ok=True)

    def passes_accuracy(self, name: str) -> bool:
        """Whether variant ``name`` is measured and passes the accuracy gates (:meth:`Gates.accuracy`)."""
        v = self.variants.get(name)
        cand = v.candidate(self.selection_threads) if v else None
        return cand is not None and self.gates.accuracy().check(cand).passed

    def convert_kwargs(self, name: str, spec: VariantSpec) -> dict[str, Any]:
        """``liteship.convert.convert``'s keywords for variant ``name`` made as ``spec``."""
        return {
            # weight fixes rewrite Keras weights, so they convert the Keras file, not the export
            "source": str(self.source if spec.rewrites_weights else self.exported),
            "output": str(self.path_of(name)),
            **spec.fix_options(),
            "calibration": self.calibration_data() if spec.integer else None,
            "calibration_samples": self.cfg.calibration.samples or CALIBRATION_SAMPLES,
            "preprocessing": self.pre.to_dict(),  # a dict: every field given, so a .tflite's own rule is not re-applied
            "keep_float_layers": spec.keep_float,
            "progress": False,
        }

    # -- data ---------------------------------------------------------------------------------------------
    def validation_data(self) -> Dataset:
        """The validation set, read and preprocessed once for every variant (kept in memory)."""
        if self._validation is None:
            from liteship.data import load_dataset

            self._validation = load_dataset(
                self.cfg.path(self.cfg.validation.data),
                preprocessing=self.pre,
                input_shape=self.input_shape,
                limit=self.cfg.validation.samples,
            ).materialize()
        return self._validation

    def calibration_data(self) -> Dataset:
        """The calibration set, read and preprocessed once for every integer recipe."""
        if self._calibration is None:
            from liteship.data import load_dataset

            self._calibration = load_dataset(
                self.cfg.path(self.cfg.calibration.data),
                preprocessing=self.pre,
                input_shape=self.input_shape,
                limit=self.cfg.calibration.samples or CALIBRATION_SAMPLES,
            ).materialize()
        return self._calibration

    def calibration_kwargs(self) -> dict[str, Any]:
        """What a calibrated conversion of this model takes (for the search backend)."""
        return {
            "calibration": self.calibration_data(),
            "calibration_samples": self.cfg.calibration.samples or CALIBRATION_SAMPLES,
            "preprocessing": self.pre,
        }

    # -- measurements -------------------------------------------------------------------------------------
    def validate(
        self,
        model: Path | bytes | Runner,
        *,
        limit: int | None = None,
        layerwise: bool = False,
        quiet: bool = False,
    ) -> ValidationReport:
        """Validate a model against the reference on the validation set (the gates are left to selection)."""
        return validate(
            model,
            self.reference,
            self.validation_data(),
            limit=limit,
            preprocessing=self.pre,
            min_agreement=None,
            max_accuracy_drop=None,
            min_sqnr=self.cfg.gates.min_sqnr,
            layerwise=layerwise,
            progress=self.progress and not (layerwise or quiet or limit is not None),
            layerwise_source=self.source if layerwise else None,
        )

    def bench(self, path: Path, quick: bool = False) -> BenchReport:
        """Benchmark a model on the Interpreter at every configured thread count (each (variant,
        accelerator) pair is timed with its validation: ``pipeline/accelerators.py``)."""
        b = self.cfg.bench
        return benchmark(
            [path],
            threads=tuple(self.threads) or (None,),
            runs=QUICK_RUNS if quick else b.runs,
            warmup=1 if quick else b.warmup,
            min_seconds=0.0 if quick else b.min_seconds,
            progress=False,
        )


__all__ = ["RunContext", "QUICK_RUNS", "Log"]
