"""``run_pipeline``: convert → validate → benchmark → select (→ mixed precision) → metadata → package → report."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from liteship.errors import GateFailed, LiteshipError, PipelineError, UsageError
from liteship.pipeline.config import PipelineConfig, load_config
from liteship.pipeline.report import PipelineReport, VariantResult
from liteship.pipeline.select import Candidate, select_variant
from liteship.types import Preprocessing

INTEGER_RECIPES = ("int8", "int8-fallback", "int16x8")
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
        self.pre = Preprocessing(
            mean=_tuple(cfg.preprocessing.mean),
            std=_tuple(cfg.preprocessing.std),
            size=cfg.preprocessing.size,
            channel_order=cfg.preprocessing.channel_order,
        )
        self.stage_seconds: dict[str, float] = {}
        self.warnings: list[str] = []
        self.conversions: dict[str, Any] = {}
        self.validations: dict[str, Any] = {}
        self.benches: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.keep_float: dict[str, list[str]] = {}
        self.pruned: dict[str, str] = {}
        self._val_data: Any = None
        self._calib_data: Any = None
        self._ref_shape: tuple[int, ...] | None = None
        self.threads = list(cfg.bench.threads)
        self.selection_threads = max(self.threads) if self.threads else None

    # -- stages --------------------------------------------------------------------------------------------
    def execute(self, raise_on_gate: bool) -> PipelineReport:
        t0 = time.perf_counter()
        self._check_inputs()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "variants").mkdir(exist_ok=True)
        source = self._timed("prepare", self._prepare_source)
        reference = self._timed("reference", self._reference_runner)
        self._ref_shape = self._input_shape(reference)
        self._timed("convert", lambda: self._convert_all(source))
        for recipe in self.cfg.recipes:
            if recipe in self.conversions:
                self._measure(recipe, reference)
        selection = self._select()
        mixed, layerwise = None, None
        if self.cfg.auto_mixed_precision.enabled:
            mixed, layerwise = self._timed(
                "mixed precision", lambda: self._mixed_precision(source, reference)
            )
            if mixed and mixed.get("rounds"):
                selection = self._select()
        device_sel = self._device_selection(selection)  # bench.devices (issue 12): select on device figures
        chosen = device_sel.chosen if device_sel is not None and not device_sel.fallback else selection.chosen
        chosen_model = package = metadata = None
        ship_error: LiteshipError | None = None
        if chosen is not None:
            try:
                chosen_model, metadata = self._timed("metadata", lambda: self._write_metadata(chosen))
                package = self._timed("package", lambda: self._package(chosen, Path(chosen_model)))
            except LiteshipError as e:  # still write the reports, then fail
                ship_error = e
                self.warnings.append(f"shipping {chosen} failed: {e}")
        report = PipelineReport(
            model_id=self.cfg.model_id,
            version=self.cfg.version,
            source=str(self.source),
            output_dir=str(self.out),
            objective=self.cfg.objective,
            selection_threads=self.selection_threads,
            variants=[self._result(r, selection) for r in self._all_recipes()],
            chosen=chosen,
            chosen_model=str(chosen_model) if chosen_model else None,
            package=package,
            metadata=metadata,
            mixed_precision=mixed,
            layerwise=layerwise,
            gates=self._gates(),
            stage_seconds=self.stage_seconds,
            total_seconds=time.perf_counter() - t0,
            report_json=str(self.out / "report.json"),
            report_html=str(self.out / "report.html"),
            warnings=self.warnings,
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

        rows = [self._result(r, selection).to_dict() for r in self._all_recipes()]
        report = {"variants": rows, "gates": self._gates(), "objective": self.cfg.objective}
        return self._timed(
            "device bench",
            lambda: select_in_pipeline({**report, "chosen": selection.chosen}, self.cfg.bench, self.log),
        )

    def _cleanup(self) -> None:
        """Remove the scratch SavedModel export (the variants and reports stay)."""
        shutil.rmtree(self.out / "work", ignore_errors=True)

    def _timed(self, stage: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + time.perf_counter() - t

    def _check_inputs(self) -> None:
        missing = []
        for what, p in (
            ("source", self.source),
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

    def _prepare_source(self) -> Any:
        """Export a Keras file to a SavedModel once; every recipe then converts that directory
        (Keras 3 models convert through export→from_saved_model anyway, tensorflow#63987)."""
        src = Path(self.source)
        if src.is_dir():
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
        from liteship.runtime import open_reference

        return CachingRunner(open_reference(self.source))

    def _variant(
        self,
        recipe: str,
        source: Any,
        reference: Any,
        keep_float: list[str] | None = None,
        name: str | None = None,
    ) -> bool:
        """Convert, benchmark, then validate one variant. Returns whether every step ran."""
        name = name or recipe
        path = self.out / "variants" / f"{name}.tflite"
        try:
            conv = self._timed("convert", lambda: self._convert(recipe, source, path, keep_float))
        except LiteshipError as e:
            self.errors[name] = str(e)
            self.log(f"[red]convert  {name}: failed[/] — {e}")
            return False
        self._converted(name, conv, keep_float)
        return self._measure(name, reference)

    def _converted(self, name: str, conv: Any, keep_float: list[str] | None = None) -> None:
        self.conversions[name] = conv
        self.keep_float[name] = list(keep_float or [])
        self.log(f"convert  {name:<16} {conv.size_bytes / 1024:8.1f} KiB  ({conv.conversion_seconds:.1f} s)")

    def _convert_all(self, source: Any) -> None:
        """Convert every recipe, in parallel worker processes when there are cores to spare: calibration
        runs single-threaded, and on MobileNetV2 the three calibrated recipes take most of the time."""
        recipes = list(self.cfg.recipes)
        workers = self.cfg.convert_workers
        if workers is None:
            # a worker costs a TensorFlow start-up (~5 s): worth it only when conversions are slow, which
            # tracks model size (digits: 70 KB, 1 s per recipe; MobileNetV2: 14 MB, up to 30 s)
            big = _tree_bytes(Path(source)) >= PARALLEL_CONVERT_MIN_BYTES
            workers = min(os.cpu_count() or 1, 4) if big else 1
        workers = min(len(recipes), workers)
        if workers <= 1:
            for recipe in recipes:
                path = self.out / "variants" / f"{recipe}.tflite"
                try:
                    self._converted(recipe, self._convert(recipe, source, path, None))
                except LiteshipError as e:
                    self.errors[recipe] = str(e)
                    self.log(f"[red]convert  {recipe}: failed[/] — {e}")
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # the slowest first, so the pool stays busy (calibrated recipes, int16x8 above all)
        order = sorted(recipes, key=lambda r: (r != "int16x8", r not in INTEGER_RECIPES))
        self.log(f"convert  {len(recipes)} recipes in {workers} worker processes")
        results: dict[str, tuple[str, Any]] = {}
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_convert_in_worker, self._convert_kwargs(r, source)): r for r in order}
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
            if status == "ok":
                self.conversions[recipe] = value
                self.keep_float[recipe] = []
            else:
                self.errors[recipe] = value

    def _convert_kwargs(self, recipe: str, source: Any) -> dict[str, Any]:
        return {
            "source": str(source),
            "output": str(self.out / "variants" / f"{recipe}.tflite"),
            "quantize": recipe,
            "io_type": self.cfg.io_type if recipe in INTEGER_RECIPES else None,
            "calibration": str(self.cfg.path(self.cfg.calibration.data))
            if recipe in INTEGER_RECIPES
            else None,
            "calibration_samples": self.cfg.calibration.samples or 200,
            "preprocessing": self.pre,
            "progress": False,
        }

    def _measure(self, name: str, reference: Any) -> bool:
        """Benchmark, then validate one converted variant."""
        path = self.out / "variants" / f"{name}.tflite"
        dominated = self._dominated_by_baseline(name, path)
        try:
            bench = self._timed("bench", lambda: self._bench(path, quick=dominated is not None))
        except LiteshipError as e:
            self.errors[name] = f"benchmark failed: {e}"
            self.log(f"[red]bench    {name}: {e}[/]")
            return False
        self.benches[name] = bench
        entry = self._entry(name)
        self.log(
            f"bench    {name:<16} p50 {entry.latency.p50_ms:.3f} ms @ {self.selection_threads} thread(s)"
            + (" [dim](quick: slower than float32)[/]" if dominated else "")
        )
        if dominated:
            self.pruned[name] = dominated
        try:
            limit = PRUNED_VALIDATION_SAMPLES if dominated else None
            val = self._timed("validate", lambda: self._validate(path, reference, limit=limit))
        except LiteshipError as e:
            self.errors[name] = f"validation failed to run: {e}"
            self.log(f"[red]validate {name}: {e}[/]")
            return False
        self.validations[name] = val
        nums = validation_numbers(val)
        self.log(
            f"validate {name:<16} agreement {_pct(nums['agreement_top1'])}  "
            f"accuracy {_pct(nums['accuracy'])}  drop {_num(nums['accuracy_drop'])} pts"
            + (f" [dim](on {val.samples} samples)[/]" if dominated else "")
        )
        return True

    def _dominated_by_baseline(self, name: str, path: Path) -> str | None:
        """Under the latency objective, a variant slower than a float32 baseline that passes every gate
        can never be selected: it gets a quick benchmark and a short validation instead of the full ones
        (on MobileNetV2, int16x8's reference kernels take ~60× float32's time). Returns the reason."""
        base = "none"
        if self.cfg.objective != "latency" or name == base or base not in self.benches:
            return None
        if not select_variant([c for c in self._candidates() if c.recipe == base], **self._gates()).chosen:
            return None
        probe = self._bench(path, quick=True)
        probe_entry = next((e for e in probe.entries if e.threads == self.selection_threads), None)
        base_entry = self._entry(base)
        if probe_entry is None or base_entry is None:
            return None
        # the probe's fastest run: noise only ever adds time, so a minimum above the baseline is real
        if probe_entry.latency.min_ms > base_entry.latency.p50_ms * DOMINANCE_MARGIN:
            self.benches[name] = probe
            return (
                f"even its fastest run ({_ms(probe_entry.latency.min_ms)}) is slower than float32's p50 "
                f"({_ms(base_entry.latency.p50_ms)}), "
                f"so it cannot be selected under the latency objective: quick benchmark, validated on "
                f"at most {PRUNED_VALIDATION_SAMPLES} samples"
            )
        return None

    def _convert(self, recipe: str, source: Any, path: Path, keep_float: list[str] | None) -> Any:
        from liteship.convert import convert

        integer = recipe in INTEGER_RECIPES
        return convert(
            source,
            path,
            quantize=recipe,
            io_type=self.cfg.io_type if integer else None,
            calibration=self._calibration_data() if recipe in INTEGER_RECIPES else None,
            calibration_samples=self.cfg.calibration.samples or 200,
            preprocessing=self.pre,
            keep_float_layers=tuple(keep_float or ()),
            progress=self.progress,
        )

    def _validate(self, path: Path, reference: Any, layerwise: bool = False, limit: int | None = None) -> Any:
        from liteship.validate import validate

        g = self.cfg.gates
        return validate(
            path,
            reference,
            self._validation_data(reference),
            limit=limit,
            preprocessing=self.pre,
            min_agreement=None,
            max_accuracy_drop=None,
            min_sqnr=g.min_sqnr,
            layerwise=layerwise,
            progress=self.progress,
            layerwise_source=self.source if layerwise else None,
        )

    def _bench(self, path: Path, quick: bool = False) -> Any:
        from liteship.bench import benchmark

        b = self.cfg.bench
        return benchmark(
            [path],
            threads=tuple(self.threads) or (None,),
            runs=QUICK_RUNS if quick else b.runs,
            warmup=1 if quick else b.warmup,
            min_seconds=0.0 if quick else b.min_seconds,
            progress=False,
        )

    def _input_shape(self, reference: Any) -> tuple[int, ...] | None:
        specs = reference.input_specs
        return tuple(specs[0].shape) if specs else None

    def _validation_data(self, reference: Any) -> Any:
        """The validation set, read and preprocessed once for every variant (kept in memory)."""
        if self._val_data is None:
            from liteship.data import load_dataset

            self._val_data = load_dataset(
                self.cfg.path(self.cfg.validation.data),
                preprocessing=self.pre,
                input_shape=self._input_shape(reference),
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

    def _entry(self, name: str, threads: int | None = None) -> Any:
        bench = self.benches.get(name)
        if bench is None:
            return None
        want = threads if threads is not None else self.selection_threads
        for e in bench.entries:
            if e.threads == want:
                return e
        return bench.entries[-1] if bench.entries else None

    def _all_recipes(self) -> list[str]:
        names = list(self.cfg.recipes)
        names += [n for n in list(self.conversions) + list(self.errors) if n not in names]
        return list(dict.fromkeys(names))

    def _gates(self) -> dict[str, Any]:
        g = self.cfg.gates
        return {
            "max_accuracy_drop": g.max_accuracy_drop,
            "min_agreement": g.min_agreement,
            "max_latency_ms": g.max_latency_ms,
            "max_size_mb": g.max_size_mb,
            "min_sqnr": g.min_sqnr,
        }

    def _candidates(self) -> list[Candidate]:
        out = []
        for name, conv in self.conversions.items():
            if name not in self.benches or name not in self.validations:
                continue
            nums = validation_numbers(self.validations[name])
            e = self._entry(name)
            out.append(
                Candidate(
                    recipe=name,
                    size_bytes=conv.size_bytes,
                    p50_ms=e.latency.p50_ms if e else None,
                    accuracy_drop=nums["accuracy_drop"],
                    agreement=nums["agreement_top1"],
                    sqnr_db=nums["sqnr_db"],
                )
            )
        return out

    def _select(self) -> Any:
        sel = select_variant(self._candidates(), objective=self.cfg.objective, **self._gates())
        if sel.chosen:
            self.log(
                f"[bold green]select[/] {sel.chosen} ({self.cfg.objective}; "
                f"{sum(v.passed for v in sel.verdicts)}/{len(sel.verdicts)} variants pass the gates)"
            )
        else:
            self.log("[bold red]select[/] no variant passes the gates")
        return sel

    # -- accuracy-aware mixed precision ------------------------------------------------------------------
    def _mixed_precision(self, source: Any, reference: Any) -> tuple[dict[str, Any] | None, list | None]:
        amp = self.cfg.auto_mixed_precision
        candidates = [amp.recipe] + [r for r in ("int8-fallback", "int8") if r != amp.recipe]
        base = next((r for r in candidates if r in self.validations), None)
        if base is None:
            why = "no int8 or int8-fallback variant was converted and validated"
            self.log(f"[yellow]mixed precision skipped[/]: {why}")
            return {"skipped": why}, None
        if base != amp.recipe:
            self.log(f"mixed precision starts from {base} ({amp.recipe} is not among the variants)")
        sel = select_variant([c for c in self._candidates() if c.recipe == base], **self._accuracy_gates())
        if sel.chosen == base:
            self.log(f"mixed precision not needed: {base} passes the accuracy gates")
            return {"skipped": f"{base} already passes the accuracy gates", "base": base}, None
        self.log(f"[bold]mixed precision[/] {base} fails the accuracy gates; ranking layers")
        ranked_report = self._validate(self.out / "variants" / f"{base}.tflite", reference, layerwise=True)
        layers = layerwise_rows(ranked_report)
        ranked = [row["name"] for row in layers]
        rounds: list[dict[str, Any]] = []
        name = f"{base}+mixed"
        for r in range(1, amp.max_rounds + 1):
            keep = ranked[: amp.step * r]
            if not keep or (rounds and keep == rounds[-1]["keep_float_layers"]):
                break
            attempt = f"{name}.round{r}"
            if not self._variant(base, source, reference, keep_float=keep, name=attempt):
                error = self.errors.pop(attempt, "failed")
                self._forget(attempt)
                rounds.append({"round": r, "keep_float_layers": keep, "passed": False, "error": error})
                self.log(f"mixed    round {r}: {len(keep)} layer(s) in float → failed: {error}")
                break  # keep the last round that ran as the mixed variant
            self._promote(attempt, name)
            nums = validation_numbers(self.validations[name])
            verdict = select_variant(
                [c for c in self._candidates() if c.recipe == name], **self._accuracy_gates()
            )
            passed = verdict.chosen == name
            rounds.append(
                {
                    "round": r,
                    "keep_float_layers": keep,
                    "passed": passed,
                    "accuracy_drop": nums.get("accuracy_drop"),
                    "agreement": nums.get("agreement_top1"),
                    "sqnr_db": nums.get("sqnr_db"),
                    "failures": verdict.verdicts[0].failures if verdict.verdicts else [],
                }
            )
            self.log(
                f"mixed    round {r}: {len(keep)} layer(s) in float → {'passes' if passed else 'still fails'}"
            )
            if passed:
                break
        last_ok = next((rd for rd in reversed(rounds) if "error" not in rd), None)
        info: dict[str, Any] = {
            "base": base,
            "rounds": rounds,
            "recipe": name if last_ok and last_ok["passed"] else None,
        }
        if last_ok is not None and name in self.conversions:
            b, m = self._entry(base), self._entry(name)
            info["float_layers"] = last_ok["keep_float_layers"]
            info["size_cost_bytes"] = self.conversions[name].size_bytes - self.conversions[base].size_bytes
            if b and m:
                info["latency_cost_ms"] = m.latency.p50_ms - b.latency.p50_ms
        if not info["recipe"]:
            self.log(
                f"[yellow]mixed precision[/]: no round passed the accuracy gates within {amp.max_rounds} rounds"
            )
        return info, layers

    def _forget(self, name: str) -> None:
        for table in (
            self.conversions,
            self.validations,
            self.benches,
            self.keep_float,
            self.pruned,
            self.errors,
        ):
            table.pop(name, None)
        (self.out / "variants" / f"{name}.tflite").unlink(missing_ok=True)

    def _promote(self, attempt: str, name: str) -> None:
        """Make a mixed-precision round's results the variant ``name`` (replacing the previous round)."""
        src, dst = self.out / "variants" / f"{attempt}.tflite", self.out / "variants" / f"{name}.tflite"
        os.replace(src, dst)
        self.conversions[name] = dataclasses.replace(self.conversions.pop(attempt), output=str(dst))
        tables: tuple[dict[str, Any], ...] = (self.validations, self.benches, self.keep_float, self.pruned)
        for table in tables:
            if attempt in table:
                table[name] = table.pop(attempt)
            else:
                table.pop(name, None)

    def _accuracy_gates(self) -> dict[str, Any]:
        g = self.cfg.gates
        return {
            "max_accuracy_drop": g.max_accuracy_drop,
            "min_agreement": g.min_agreement,
            "min_sqnr": g.min_sqnr,
        }

    # -- ship ---------------------------------------------------------------------------------------------
    def _write_metadata(self, chosen: str) -> tuple[Path, dict[str, Any]]:
        from liteship.model.metadata import read_metadata, write_metadata

        m = self.cfg.metadata
        src = self.out / "variants" / f"{chosen}.tflite"
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
        val = self.validations[chosen]
        conv = self.conversions[chosen]
        ds = load_dataset(
            self.cfg.path(self.cfg.validation.data),
            preprocessing=self.pre,
            input_shape=conv.inputs[0].shape if conv.inputs else None,
            limit=pk.golden_samples,
        )
        import numpy as np

        golden = np.stack([x for x, _ in ds]).astype(np.float32)
        e = self._entry(chosen)  # the thread count selection used, as in the summary table
        budget = max(100.0, (e.latency.p99_ms if e else 10.0) * pk.latency_budget_factor)
        nums = validation_numbers(val)
        conv = self.conversions[chosen]
        metrics = {
            "recipe": chosen,
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

    # -- results ------------------------------------------------------------------------------------------
    def _result(self, name: str, selection: Any) -> VariantResult:
        verdict = next((v for v in selection.verdicts if v.recipe == name), None)
        if name not in self.conversions or name in self.errors and name not in self.benches:
            return VariantResult(
                recipe=name,
                path=None,
                ok=False,
                error=self.errors.get(name, "not run"),
                gates_passed=False,
                failures=[self.errors.get(name, "not run")],
            )
        conv = self.conversions[name]
        nums = validation_numbers(self.validations[name]) if name in self.validations else {}
        latency = {}
        bench = self.benches.get(name)
        for e in bench.entries if bench else []:
            latency[str(e.threads)] = {
                "p50_ms": e.latency.p50_ms,
                "p95_ms": e.latency.p95_ms,
                "p99_ms": e.latency.p99_ms,
                "mean_ms": e.latency.mean_ms,
                "init_ms": e.init_ms,
            }
        e = self._entry(name)
        return VariantResult(
            recipe=name,
            path=conv.output,
            ok=True,
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
            keep_float_layers=self.keep_float.get(name, []),
            pruned=self.pruned.get(name),
            validation_samples=self.validations[name].samples if name in self.validations else None,
            warnings=list(conv.warnings),
            latency_samples_ms=_thin(list(e.samples_ms)) if e else [],
            confidence_histogram=nums.get("confidence_histogram"),
        )

    def _write_reports(self, report: PipelineReport) -> None:
        import json

        from liteship._fs import write_atomic
        from liteship.report.pipeline_html import render_pipeline_html

        write_atomic(self.out / "report.json", json.dumps(report.to_dict(), indent=2).encode())
        write_atomic(self.out / "report.html", render_pipeline_html(report).encode())


def _tree_bytes(path: Path) -> int:
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


def validation_numbers(report: Any) -> dict[str, Any]:
    """The figures selection and packaging need, from a ValidationReport."""
    return _validation_numbers(report)


def _validation_numbers(vr: Any) -> dict[str, Any]:
    first = vr.agreement[0] if vr.agreement else None
    finite_sqnr = [o.sqnr_db for o in vr.outputs if o.sqnr_db is not None and math.isfinite(o.sqnr_db)]
    hist = vr.confidence_histogram
    return {
        "samples": vr.samples,
        "passed": vr.passed,
        "agreement_top1": first.top1 if first else None,
        "agreement_top5": first.top5 if first else None,
        "accuracy": first.candidate_accuracy if first else None,
        "reference_accuracy": first.reference_accuracy if first else None,
        "accuracy_drop": first.accuracy_drop if first else None,
        # identical outputs have infinite SQNR; the gate reads the worst finite one
        "sqnr_db": min(finite_sqnr) if finite_sqnr else None,
        "max_abs_error": max((o.max_abs_error for o in vr.outputs), default=None),
        "confidence_histogram": {"bins": list(hist.bins), "counts": list(hist.counts), "output": hist.output}
        if hist
        else None,
    }


def layerwise_rows(vr: Any) -> list[dict[str, Any]]:
    """Per-layer error rows, worst first, as plain dicts (``name`` goes to ``keep_float_layers``)."""
    return [
        {
            "name": row.name,
            "op": row.op_name,
            "score": row.rmse_over_scale,
            "mse": row.mean_squared_error,
            "max_abs_error": row.max_abs_error,
        }
        for row in vr.layerwise
    ]


def _ms(value: float) -> str:
    """A latency with enough digits to tell microsecond models apart."""
    return f"{value * 1000:.2f} µs" if value < 0.1 else f"{value:.3f} ms"


def _thin(samples: list[float], keep: int = 2000) -> list[float]:
    """At most ``keep`` latency samples, evenly spaced (enough for a histogram; keeps report.json small)."""
    if len(samples) <= keep:
        return samples
    step = len(samples) / keep
    return [samples[int(i * step)] for i in range(keep)]


def _tuple(v: Any) -> tuple[float, ...]:
    return tuple(v) if isinstance(v, (list, tuple)) else (float(v),)


def _pct(v: float | None) -> str:
    return "   n/a" if v is None else f"{100 * v:6.2f}%"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"
