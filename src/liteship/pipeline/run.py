"""``run_pipeline``: convert → validate → benchmark → select (→ accuracy repair) → metadata → package → report."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liteship.errors import GateFailed, LiteshipError, PipelineError, UsageError
from liteship.pipeline.config import PipelineConfig, load_config
from liteship.pipeline.gates import Gates
from liteship.pipeline.report import PipelineReport
from liteship.pipeline.select import Selection, pair_label, select_variant
from liteship.pipeline.spec import INTEGER_RECIPES, VariantSpec
from liteship.pipeline.variant import Variant
from liteship.runtime.base import Runner

if TYPE_CHECKING:
    from liteship.data import Dataset

DOMINANCE_MARGIN = 1.10  # a variant this much slower than a passing float32 baseline cannot win on latency
PRUNED_VALIDATION_SAMPLES = 50
QUICK_RUNS = 10
PARALLEL_CONVERT_MIN_BYTES = 4 * 1024 * 1024
Log = Callable[[str], None]


def _default_log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(msg)


def run_pipeline(
    config: str | Path | dict[str, Any] | PipelineConfig,
    *,
    log: Log | None = None,
    progress: bool = True,
    raise_on_gate: bool = True,
) -> PipelineReport:
    """Run the whole pipeline described by ``liteship.yaml``.

    Args:
        config: Path to the YAML file, a dict, or a :class:`PipelineConfig`.
        log: Receives one line per stage step. Defaults to rich on stderr.
        progress: Draw progress bars for long steps. Defaults to ``True``.
        raise_on_gate: Raise :class:`GateFailed` (exit 3) when no variant passes the gates, after
            writing the reports. Defaults to ``True``.

    Returns:
        The :class:`PipelineReport` (also written to ``<output>/report.json`` and ``report.html``).

    Raises:
        UsageError: Invalid configuration or missing inputs.
        GateFailed: No variant passes the gates (each variant's failing gates are listed).
    """
    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    return _Run(cfg, log or _default_log, progress).execute(raise_on_gate)


class _Run:
    def __init__(self, cfg: PipelineConfig, log: Log, progress: bool) -> None:
        self.cfg, self.log, self.progress = cfg, log, progress
        self.out = cfg.path(cfg.output)
        assert self.out is not None
        self.source = cfg.path(cfg.source)
        self.rule = _preprocessing_rule(cfg, self.source)
        self.pre = self.rule.preprocessing
        self.source_normalization: dict[str, Any] | None = None
        self.rule_text = self.rule.describe()
        self.stage_seconds: dict[str, float] = {}
        self.measure_seconds: dict[str, float] = {}  # bench + validation of each variant
        self.started = time.perf_counter()
        self.warnings: list[str] = []
        self.variants: dict[str, Variant] = {}  # by name, in the order they were made
        self.exported: Any = None  # the SavedModel export every recipe converts
        self.reference: Any = None
        self._val_data: Any = None
        self._calib_data: Any = None
        self._ref_shape: tuple[int, ...] | None = None
        self.threads = list(cfg.bench.threads)
        self.chosen_accelerator: str | None = None
        if None not in cfg.bench.accelerators:
            self.warnings.append(
                "bench.accelerators does not list the Interpreter (null): the variants are still measured "
                "on it (pruning and repair use those figures), but only the accelerator pairs are candidates."
            )
        self.selection_threads = max(self.threads) if self.threads else None
        self.gates = Gates.from_config(cfg.gates)

    # -- stages --------------------------------------------------------------------------------------------
    def execute(self, raise_on_gate: bool) -> PipelineReport:
        t0 = self.started = time.perf_counter()
        self._check_inputs()
        self._check_preprocessing()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "variants").mkdir(exist_ok=True)
        self.exported = self.timed("prepare", self._prepare_source)
        self.reference = self.timed("reference", self._reference_runner)
        self._ref_shape = self._input_shape(self.reference)
        self.timed("data", self.validation_data)  # bad validation data fails the run here (exit 1), once
        self.timed("convert", self._convert_all)
        for recipe in self.cfg.recipes:
            if recipe in self.variants and self.variants[recipe].error is None:
                self.measure(recipe)
        selection = self.select()
        repair = None
        if self.cfg.auto_mixed_precision.enabled:
            from liteship.pipeline.repair import repair_accuracy

            repair = self.timed("mixed precision", lambda: repair_accuracy(self))
            if repair.attempts or repair.search:
                selection = self.select()
        device_sel = self._device_selection(selection)  # bench.devices (issue 12): select on device figures
        chosen = device_sel.chosen if device_sel is not None and not device_sel.fallback else selection.chosen
        # devices time the Interpreter; otherwise the chosen pair's accelerator (None: the Interpreter)
        self.chosen_accelerator = selection.chosen_accelerator if chosen == selection.chosen else None
        chosen_model = package = metadata = None
        ship_error: LiteshipError | None = None
        if chosen is not None:
            try:
                chosen_model, metadata = self.timed("metadata", lambda: self._write_metadata(chosen))
                package = self.timed("package", lambda: self._package(chosen, Path(chosen_model)))
            except LiteshipError as e:  # still write the reports, then fail
                ship_error = e
                self.warnings.append(f"shipping {chosen} failed: {e}")
        verdicts = {v.recipe: v for v in selection.verdicts if v.accelerator is None}
        pair_verdicts: dict[tuple[str, str | None], Any] = {
            (v.recipe, v.accelerator): v for v in selection.verdicts if v.accelerator
        }
        report = PipelineReport(
            model_id=self.cfg.model_id,
            version=self.cfg.version,
            source=str(self.source),
            output_dir=str(self.out),
            objective=self.cfg.objective,
            selection_threads=self.selection_threads,
            variants=[
                self.variants.get(n, Variant(n, VariantSpec(n), error="not run")).result(
                    verdicts.get(n), self.selection_threads
                )
                for n in self._all_names()
            ],
            chosen=chosen,
            chosen_model=str(chosen_model) if chosen_model else None,
            package=package,
            metadata=metadata,
            mixed_precision=repair,
            layerwise=None,
            gates=self.gates.to_dict(),
            stage_seconds=self.stage_seconds,
            total_seconds=time.perf_counter() - t0,
            report_json=str(self.out / "report.json"),
            report_html=str(self.out / "report.html"),
            warnings=self.warnings,
            accelerator_pairs=[
                r
                for n in self._all_names()
                if n in self.variants
                for r in self.variants[n].pair_results(pair_verdicts, self.selection_threads)
            ],
            chosen_accelerator=self.chosen_accelerator if chosen is not None else None,
            preprocessing={**self.rule.to_dict(), "text": self.rule_text},
            source_normalization=self.source_normalization,
        )
        self._cleanup()
        report = dataclasses.replace(report, total_seconds=time.perf_counter() - t0)
        self._write_reports(report)
        if device_sel is not None:
            from liteship.pipeline.device_select import write_selection

            write_selection(self.out / "report.json", report.to_dict(), device_sel)
        if ship_error is not None:
            raise ship_error
        if chosen is None and raise_on_gate:
            failures = [f"{r}: {'; '.join(f)}" for r, f in selection.failures_by_recipe.items()]
            raise GateFailed(
                f"no variant passes the gates; nothing was packaged (reports: {self.out / 'report.html'}).",
                failures=failures,
                report=report,
            )
        return report

    def _device_selection(self, selection: Any) -> Any:
        """With ``bench.devices``: benchmark the variants on those devices and select on their figures."""
        if not self.cfg.bench.devices:
            return None
        from liteship.pipeline.device_select import select_in_pipeline

        verdicts = {v.recipe: v for v in selection.verdicts}
        rows = [
            self.variants.get(n, Variant(n, VariantSpec(n), error="not run"))
            .result(verdicts.get(n), self.selection_threads)
            .to_dict()
            for n in self._all_names()
        ]
        report = {"variants": rows, "gates": self.gates.to_dict(), "objective": self.cfg.objective}
        return self.timed(
            "device bench",
            lambda: select_in_pipeline({**report, "chosen": selection.chosen}, self.cfg.bench, self.log),
        )

    def _cleanup(self) -> None:
        """Remove the scratch SavedModel export and search models (the variants and reports stay)."""
        shutil.rmtree(self.out / "work", ignore_errors=True)

    def timed(self, stage: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn``, adding its wall time to ``stage`` in the report."""
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + time.perf_counter() - t

    def _check_inputs(self) -> None:
        missing = []
        from liteship.convert.sources import source_file

        for what, p in (
            ("source", source_file(self.source)),  # net.py for a PyTorch net.py:factory source
            ("calibration.data", self.cfg.path(self.cfg.calibration.data)),
            ("validation.data", self.cfg.path(self.cfg.validation.data)),
        ):
            if p is None or not Path(p).exists():
                missing.append(f"{what} ({p})")
        if self.cfg.package.key and not Path(self.cfg.path(self.cfg.package.key)).exists():
            missing.append(
                f"package.key ({self.cfg.path(self.cfg.package.key)}); create it with `liteship keygen`"
            )
        if missing:
            raise PipelineError(
                f"the pipeline config names files that do not exist: {', '.join(missing)}.",
                hint="Paths are relative to the config file's folder.",
            )

    def _check_preprocessing(self) -> None:
        """Say which preprocessing rule applies and where it came from; data that do not fit it stop the
        run here (exit 1) or warn, before any conversion. A .tflite source's legacy parts are reported."""
        from liteship.model.preprocessing import check_dataset_fits

        if str(self.source).lower().endswith(".tflite"):
            _check_tflite_source(self.source)
        read = None
        for what, data in (
            ("calibration", self.cfg.calibration.data),
            ("validation", self.cfg.validation.data),
        ):
            seen, warning = check_dataset_fits(self.rule, self.cfg.path(data), where=f"{what}.data {data!r}")
            read = read or seen
            if warning:
                self.warnings.append(warning)
                self.log(f"[yellow]warning[/] {warning}")
        self.rule_text = self.rule.describe(read)
        self.log(f"[bold]preprocessing[/] {self.rule_text}")
        if str(self.source).lower().endswith(".tflite"):
            from liteship.model.normalize import normalize_model

            _, record = normalize_model(self.source)
            self.source_normalization = record.to_dict()
            self.log(f"[bold]source[/] normalized on load: {record.summary()}")

    def _prepare_source(self) -> Any:
        """Export a Keras file to a SavedModel once; every recipe then converts that directory
        (Keras 3 models convert through export→from_saved_model anyway, tensorflow#63987)."""
        from liteship.convert.sources import source_kind

        src = Path(self.source)
        if src.is_dir() or source_kind(self.source) != "tensorflow":  # .tflite and PyTorch: as they are
            return src
        from liteship._tf import import_tf

        import_tf()
        import keras

        self.log(f"[bold]prepare[/] loading {src} and exporting it to a SavedModel once")
        target = self.out / "work" / "saved_model"
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        from liteship.convert.sources import quiet_stdout

        try:
            model = keras.models.load_model(src, compile=False)
            with quiet_stdout():
                model.export(str(target), verbose=False)
        except Exception as e:  # Keras raises many types for unreadable files
            raise UsageError(
                f"cannot load the source model {str(src)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                hint="Give a .keras/.h5 file or a SavedModel directory.",
            ) from e
        return target

    def _reference_runner(self) -> Any:
        from liteship.pipeline.cache import CachingRunner
        from liteship.runtime import reference_runner_for

        return CachingRunner(reference_runner_for(self.source))

    # -- variants -----------------------------------------------------------------------------------------
    def path_of(self, name: str) -> Path:
        return self.out / "variants" / f"{name}.tflite"

    def add_variant(self, name: str, spec: VariantSpec) -> Variant:
        """Convert, benchmark and validate one more variant; returns its record (``error`` set on failure)."""
        v = Variant(name, spec)
        try:
            conv = self.timed("convert", lambda: self._convert(v))
        except LiteshipError as e:
            self.variants[name] = v.replace(error=str(e))
            self.log(f"[red]convert  {name}: failed[/] — {e}")
            return self.variants[name]
        self._converted(v.replace(conversion=conv))
        return self.measure(name)

    def discard(self, name: str) -> None:
        """Forget a variant and delete its file."""
        self.variants.pop(name, None)
        self.path_of(name).unlink(missing_ok=True)

    def _converted(self, v: Variant) -> None:
        assert v.conversion is not None
        self.variants[v.name] = v
        conv = v.conversion
        self.log(
            f"convert  {v.name:<16} {conv.size_bytes / 1024:8.1f} KiB  ({conv.conversion_seconds:.1f} s)"
        )

    def _convert_all(self) -> None:
        """Convert every recipe, in parallel worker processes when there are cores to spare: calibration
        runs single-threaded, and on MobileNetV2 the three calibrated recipes take most of the time."""
        recipes = list(self.cfg.recipes)
        workers = self.cfg.convert_workers
        if workers is None:
            # a worker costs a TensorFlow start-up (~5 s): worth it only when conversions are slow, which
            # tracks model size (digits: 70 KB, 1 s per recipe; MobileNetV2: 14 MB, up to 30 s)
            big = _tree_bytes(Path(self.exported)) >= PARALLEL_CONVERT_MIN_BYTES
            workers = min(os.cpu_count() or 1, 4) if big else 1
        workers = min(len(recipes), workers)
        if workers <= 1:
            for recipe in recipes:
                v = Variant(recipe, VariantSpec.configured(recipe, self.cfg))
                try:
                    self._converted(v.replace(conversion=self._convert(v)))
                except LiteshipError as e:
                    self.variants[recipe] = v.replace(error=str(e))
                    self.log(f"[red]convert  {recipe}: failed[/] — {e}")
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # the slowest first, so the pool stays busy (calibrated recipes, int16x8 above all)
        order = sorted(recipes, key=lambda r: (r != "int16x8", r not in INTEGER_RECIPES))
        self.log(f"convert  {len(recipes)} recipes in {workers} worker processes")
        results: dict[str, tuple[str, Any]] = {}
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {
                pool.submit(
                    _convert_in_worker, self.convert_kwargs(r, VariantSpec.configured(r, self.cfg))
                ): r
                for r in order
            }
            for fut in as_completed(futures):
                recipe = futures[fut]
                try:
                    results[recipe] = fut.result()
                except Exception as e:  # the worker died (out of memory, killed)
                    results[recipe] = ("error", f"the conversion worker failed: {type(e).__name__}: {e}")
                status, value = results[recipe]
                if status == "ok":
                    self.log(
                        f"convert  {recipe:<16} {value.size_bytes / 1024:8.1f} KiB  "
                        f"({value.conversion_seconds:.1f} s)"
                    )
                else:
                    self.log(f"[red]convert  {recipe}: failed[/] — {value}")
        for recipe in recipes:  # record in config order
            status, value = results[recipe]
            v = Variant(recipe, VariantSpec.configured(recipe, self.cfg))
            self.variants[recipe] = v.replace(conversion=value) if status == "ok" else v.replace(error=value)

    def convert_kwargs(self, name: str, spec: VariantSpec) -> dict[str, Any]:
        """``convert``'s keywords for variant ``name`` made as ``spec``."""
        return {
            # weight fixes rewrite Keras weights, so they convert the Keras file, not the export
            "source": str(self.source if spec.rewrites_weights else self.exported),
            "output": str(self.path_of(name)),
            **spec.fix_options(),
            "calibration": self._calibration_data() if spec.integer else None,
            "calibration_samples": self.cfg.calibration.samples or 200,
            "preprocessing": self.pre.to_dict(),  # a dict: every field given, so a .tflite's own rule is not re-applied
            "keep_float_layers": spec.keep_float,
            "progress": False,
        }

    def _convert(self, v: Variant) -> Any:
        from liteship.convert import convert

        kwargs = self.convert_kwargs(v.name, v.spec)
        kwargs["progress"] = self.progress
        return convert(**kwargs)

    def measure(self, name: str) -> Variant:
        """Benchmark, then validate one converted variant; returns the updated record."""
        t = time.perf_counter()
        try:
            return self._measure(name)
        finally:
            self.measure_seconds[name] = time.perf_counter() - t

    def _measure(self, name: str) -> Variant:
        v = self.variants[name]
        path = self.path_of(name)
        dominated, probe = self._dominated_by_baseline(name, path)
        try:
            bench = probe or self.timed("bench", lambda: self.bench(path, quick=False))
        except LiteshipError as e:
            self.variants[name] = v.replace(error=f"benchmark failed: {e}")
            self.log(f"[red]bench    {name}: {e}[/]")
            return self.variants[name]
        v = v.replace(bench=bench, pruned=dominated)
        self.variants[name] = v
        entry = v.entry(self.selection_threads)
        if entry is not None:
            self.log(
                f"bench    {name:<16} p50 {entry.latency.p50_ms:.3f} ms @ {self.selection_threads} thread(s)"
                + (" [dim](quick: slower than float32)[/]" if dominated else "")
            )
        try:
            limit = PRUNED_VALIDATION_SAMPLES if dominated else None
            val = self.timed("validate", lambda: self.validate(path, limit=limit))
        except LiteshipError as e:
            self.variants[name] = v.replace(error=f"validation failed to run: {e}")
            self.log(f"[red]validate {name}: {e}[/]")
            return self.variants[name]
        v = v.replace(validation=val)
        self.variants[name] = v
        nums = val.summary()
        self.log(
            f"validate {name:<16} agreement {_pct(nums['agreement_top1'])}  "
            f"accuracy {_pct(nums['accuracy'])}  drop {_num(nums['accuracy_drop'])} pts"
            + (f" [dim](on {val.samples} samples)[/]" if dominated else "")
        )
        return self._measure_pairs(v, path, limit, dominated is not None)

    def _measure_pairs(self, v: Variant, path: Path, limit: int | None, quick: bool) -> Variant:
        """Issue 15: the variant on every CompiledModel accelerator of ``bench.accelerators``."""
        from liteship.pipeline.accelerators import measure_pairs

        v = v.replace(pairs=measure_pairs(self, v.name, path, limit, quick))
        self.variants[v.name] = v
        return v

    def _dominated_by_baseline(self, name: str, path: Path) -> tuple[str | None, Any]:
        """Under the latency objective, a variant slower than a float32 baseline that passes every gate
        can never be selected: it gets a quick benchmark and a short validation instead of the full ones
        (on MobileNetV2, int16x8's reference kernels take ~60× float32's time). Returns the reason and
        the quick benchmark."""
        base = self.variants.get("none")
        if self.cfg.objective != "latency" or name == "none" or base is None or base.bench is None:
            return None, None
        cand = base.candidate(self.selection_threads)
        if cand is None or not self.gates.check(cand).passed:
            return None, None
        probe = self.timed("bench", lambda: self.bench(path, quick=True))
        probe_entry = next((e for e in probe.entries if e.threads == self.selection_threads), None)
        base_entry = base.entry(self.selection_threads)
        if probe_entry is None or base_entry is None:
            return None, None
        # the probe's fastest run: noise only ever adds time, so a minimum above the baseline is real
        if probe_entry.latency.min_ms > base_entry.latency.p50_ms * DOMINANCE_MARGIN:
            return (
                f"even its fastest run ({_ms(probe_entry.latency.min_ms)}) is slower than float32's p50 "
                f"({_ms(base_entry.latency.p50_ms)}), "
                f"so it cannot be selected under the latency objective: quick benchmark, validated on "
                f"at most {PRUNED_VALIDATION_SAMPLES} samples"
            ), probe
        return None, None

    def validate(
        self,
        path: Path | bytes | Runner,
        *,
        limit: int | None = None,
        layerwise: bool = False,
        quiet: bool = False,
    ) -> Any:
        """Validate a model against the reference on the validation set (accuracy gates left to selection)."""
        from liteship.validate import validate

        return validate(
            path,
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

    def bench(self, path: Path, quick: bool = False) -> Any:
        from liteship.bench import benchmark

        b = self.cfg.bench
        return benchmark(
            [path],
            threads=tuple(self.threads) or (None,),
            runs=QUICK_RUNS if quick else b.runs,
            warmup=1 if quick else b.warmup,
            min_seconds=0.0 if quick else b.min_seconds,
            progress=False,
            # the Interpreter; each (variant, accelerator) pair is timed with its validation (_measure_pairs)
        )

    def _input_shape(self, reference: Any) -> tuple[int, ...] | None:
        specs = reference.input_specs
        return tuple(specs[0].shape) if specs else None

    def validation_data(self) -> Dataset:
        """The validation set, read and preprocessed once for every variant (kept in memory); the one way
        the pipeline's other modules (accelerator pairs, repair) get it."""
        if self._val_data is None:
            from liteship.data import load_dataset

            self._val_data = load_dataset(
                self.cfg.path(self.cfg.validation.data),
                preprocessing=self.pre,
                input_shape=self._ref_shape,
                limit=self.cfg.validation.samples,
            ).materialize()
        return self._val_data

    def _calibration_data(self) -> Any:
        """The calibration set, read and preprocessed once for every integer recipe."""
        if self._calib_data is None:
            from liteship.data import load_dataset

            self._calib_data = load_dataset(
                self.cfg.path(self.cfg.calibration.data),
                preprocessing=self.pre,
                input_shape=self._ref_shape,
                limit=self.cfg.calibration.samples or 200,
            ).materialize()
        return self._calib_data

    def calibration_kwargs(self) -> dict[str, Any]:
        """What a calibrated conversion of this model takes (for the search backend)."""
        return {
            "calibration": self._calibration_data(),
            "calibration_samples": self.cfg.calibration.samples or 200,
            "preprocessing": self.pre,
        }

    def _all_names(self) -> list[str]:
        return list(dict.fromkeys([*self.cfg.recipes, *self.variants]))

    # -- gates --------------------------------------------------------------------------------------------
    def passes_accuracy(self, name: str) -> bool:
        v = self.variants.get(name)
        cand = v.candidate(self.selection_threads) if v else None
        return cand is not None and self.gates.accuracy().check(cand).passed

    def select(self) -> Selection:
        """Select over every (variant, accelerator) pair: the Interpreter's (when ``bench.accelerators``
        lists it, as by default) and each CompiledModel accelerator's."""
        t = self.selection_threads
        interp = None in self.cfg.bench.accelerators
        cands = [c for v in self.variants.values() if interp and (c := v.candidate(t))]
        cands += [c for v in self.variants.values() for c in v.pair_candidates(t)]
        sel = select_variant(cands, objective=self.cfg.objective, gates=self.gates)
        if sel.chosen:
            self.log(
                f"[bold green]select[/] {pair_label(sel.chosen, sel.chosen_accelerator)} ({self.cfg.objective}; "
                f"{sum(v.passed for v in sel.verdicts)}/{len(sel.verdicts)} candidates pass the gates)"
            )
        else:
            self.log("[bold red]select[/] no variant passes the gates")
        return sel

    # -- ship ---------------------------------------------------------------------------------------------
    def _write_metadata(self, chosen: str) -> tuple[Path, dict[str, Any]]:
        from liteship.model.metadata import read_metadata, write_metadata

        m = self.cfg.metadata
        src = self.path_of(chosen)
        dst = self.out / f"{self.cfg.model_id}.tflite"
        labels = self.cfg.path(m.labels)
        write_metadata(
            src,
            dst,
            name=m.name or self.cfg.model_id,
            version=self.cfg.version,
            description=m.description,
            author=m.author,
            license=m.license,
            labels=labels,
            input_mean=list(self.pre.mean),
            input_std=list(self.pre.std),
        )
        self.log(f"[bold]metadata[/] written into {dst}")
        return dst, read_metadata(dst)

    def _package(self, chosen: str, model_path: Path) -> dict[str, Any] | None:
        from liteship.data import load_dataset
        from liteship.package import build_package

        pk = self.cfg.package
        if not pk.key:
            self.warnings.append("package.key is not set: the model was not packaged or signed.")
            self.log("[yellow]package[/] skipped: package.key is not set")
            return None
        v = self.variants[chosen]
        pair = next((p for p in v.pairs if p.accelerator == self.chosen_accelerator), None)
        if pair is not None:  # the pair's figures: what the device will see on that accelerator
            from liteship.pipeline.accelerators import with_pair

            v = with_pair(v, pair)
        conv, val = v.conversion, v.validation
        assert conv is not None and val is not None
        ds = load_dataset(
            self.cfg.path(self.cfg.validation.data),
            preprocessing=self.pre,
            input_shape=conv.inputs[0].shape if conv.inputs else None,
            limit=pk.golden_samples,
        )
        import numpy as np

        golden = np.stack([x for x, _ in ds]).astype(np.float32)
        e = v.entry(self.selection_threads)  # the thread count selection used, as in the summary table
        budget = max(100.0, (e.latency.p99_ms if e else 10.0) * pk.latency_budget_factor)
        nums = val.summary()
        metrics = {
            "recipe": chosen,
            **({"accelerator": self.chosen_accelerator} if self.chosen_accelerator else {}),
            "size_bytes": conv.size_bytes,
            **{k: v for k, v in nums.items() if k != "confidence_histogram"},
        }
        if e:
            metrics.update(
                p50_ms=e.latency.p50_ms,
                p95_ms=e.latency.p95_ms,
                p99_ms=e.latency.p99_ms,
                bench_threads=e.threads,
            )
        rng = next(iter(conv.calibration_range.values()), None) if conv.calibration_range else None
        info = build_package(
            model_path,
            self.out,
            model_id=self.cfg.model_id,
            version=self.cfg.version,
            private_key=self.cfg.path(pk.key),
            recipe=chosen,
            metrics=metrics,
            reference_histogram=nums.get("confidence_histogram"),
            golden_inputs=golden,
            latency_budget_ms=budget,
            calibration_range=rng,
            labels=self.cfg.path(self.cfg.metadata.labels),
            description=self.cfg.metadata.description,
        )
        self.log(f"[bold]package[/] {info.path} (signed, {info.size / 1024:.1f} KiB)")
        return info.to_dict()

    def _write_reports(self, report: PipelineReport) -> None:
        import json

        from liteship._fs import write_atomic
        from liteship.report.pipeline_html import render_pipeline_html

        write_atomic(self.out / "report.json", json.dumps(report.to_dict(), indent=2).encode())
        write_atomic(self.out / "report.html", render_pipeline_html(report).encode())


def _tree_bytes(path: Path) -> int:
    from liteship.convert.sources import source_file

    path = source_file(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _convert_in_worker(kwargs: dict[str, Any]) -> tuple[str, Any]:
    """Run one conversion in a worker process; errors come back as text (exceptions with keyword-only
    constructors do not survive pickling)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from liteship.convert import convert

    try:
        return "ok", convert(**kwargs)
    except LiteshipError as e:
        return "error", str(e)
    except Exception as e:  # report, don't kill the pool
        return "error", f"internal error ({type(e).__name__}: {e})"


def _ms(value: float) -> str:
    """A latency with enough digits to tell microsecond models apart."""
    return f"{value * 1000:.2f} µs" if value < 0.1 else f"{value:.3f} ms"


def _tuple(v: Any) -> tuple[float, ...]:
    return tuple(v) if isinstance(v, (list, tuple)) else (float(v),)


def _pct(v: float | None) -> str:
    return "   n/a" if v is None else f"{100 * v:6.2f}%"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _preprocessing_rule(cfg: PipelineConfig, source: Path) -> Any:
    """The one rule (:func:`liteship.model.preprocessing.resolve_preprocessing`): the fields liteship.yaml
    gives override what a ``.tflite`` source declares in its metadata."""
    from liteship.model.preprocessing import resolve_preprocessing

    given = cfg.preprocessing.model_fields_set
    override = {
        k: _tuple(v) if k in ("mean", "std") else v
        for k, v in cfg.preprocessing.model_dump().items()
        if k in given
    }
    tflite = source if str(source).lower().endswith(".tflite") and Path(source).is_file() else None
    return resolve_preprocessing(tflite, override or None)


def _check_tflite_source(source: Path) -> None:
    """A .tflite source must be a float model LiteRT's builtin runtime runs: the pipeline converts it and
    runs it as the reference. An already quantized file (a uint8 QAT model) or a Flex model stops here."""
    from liteship.convert.tflite_quant import check_builtin_ops, check_float_source
    from liteship.errors import ConversionError
    from liteship.model.flatbuffer import load_model

    loaded = load_model(source)
    try:
        check_float_source(loaded, f"source {str(source)!r}")
        check_builtin_ops(loaded, f"source {str(source)!r}")
    except ConversionError as e:
        raise PipelineError(
            f"{e.message} The pipeline converts a float model and runs it as the reference.",
            hint=e.hint,
        ) from e
