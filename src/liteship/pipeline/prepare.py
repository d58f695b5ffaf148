"""The first stage: check the inputs and the preprocessing, export a Keras source once, load the reference
and the validation data — before any conversion, so bad inputs fail the run early (exit 1)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from liteship._tf import import_tf
from liteship.convert.sources import quiet_stdout, source_file, source_kind
from liteship.convert.tflite_quant import check_builtin_ops, check_float_source
from liteship.errors import ConversionError, PipelineError, UsageError
from liteship.model.flatbuffer import load_model
from liteship.model.preprocessing import check_dataset_fits, resolve_preprocessing
from liteship.pipeline.config import PipelineConfig
from liteship.pipeline.context import Log, RunContext


def open_context(cfg: PipelineConfig, log: Log, progress: bool) -> RunContext:
    """The run's context, with the preprocessing rule resolved (nothing is read or written yet)."""
    ctx = RunContext(cfg, log, progress, preprocessing_rule(cfg, cfg.path(cfg.source)))
    if None not in cfg.bench.accelerators:
        ctx.warn(
            "bench.accelerators does not list the Interpreter (null): the variants are still measured "
            "on it (pruning and repair use those figures), but only the accelerator pairs are candidates."
        )
    return ctx


def prepare(ctx: RunContext) -> None:
    """Check the inputs and preprocessing; set ``ctx.exported``, ``ctx.reference`` and read the data."""
    check_inputs(ctx)
    check_preprocessing(ctx)
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "variants").mkdir(exist_ok=True)
    ctx.exported = ctx.timed("prepare", lambda: prepare_source(ctx))
    reference = ctx.timed("reference", lambda: reference_runner(ctx.source))
    ctx.reference = reference
    specs = reference.input_specs
    ctx.input_shape = tuple(specs[0].shape) if specs else None
    ctx.timed("data", ctx.validation_data)  # bad validation data fails the run here (exit 1), once


def check_inputs(ctx: RunContext) -> None:
    cfg = ctx.cfg
    missing = []
    for what, p in (
        ("source", source_file(ctx.source)),  # net.py for a PyTorch net.py:factory source
        ("calibration.data", cfg.path(cfg.calibration.data)),
        ("validation.data", cfg.path(cfg.validation.data)),
    ):
        if p is None or not Path(p).exists():
            missing.append(f"{what} ({p})")
    if cfg.package.key and not Path(cfg.path(cfg.package.key)).exists():
        missing.append(f"package.key ({cfg.path(cfg.package.key)}); create it with `liteship keygen`")
    if missing:
        raise PipelineError(
            f"the pipeline config names files that do not exist: {', '.join(missing)}.",
            hint="Paths are relative to the config file's folder.",
        )


def check_preprocessing(ctx: RunContext) -> None:
    """Say which preprocessing rule applies and where it came from; data that do not fit it stop the
    run here (exit 1) or warn, before any conversion. A .tflite source's legacy parts are reported."""
    tflite = str(ctx.source).lower().endswith(".tflite")
    if tflite:
        check_tflite_source(ctx.source)
    read = None
    for what, data in (("calibration", ctx.cfg.calibration.data), ("validation", ctx.cfg.validation.data)):
        seen, warning = check_dataset_fits(ctx.rule, ctx.cfg.path(data), where=f"{what}.data {data!r}")
        read = read or seen
        if warning:
            ctx.warn(warning)
            ctx.log(f"[yellow]warning[/] {warning}")
    ctx.rule_text = ctx.rule.describe(read)
    ctx.log(f"[bold]preprocessing[/] {ctx.rule_text}")
    if tflite:
        from liteship.model.normalize import normalize_model

        _, record = normalize_model(ctx.source)
        ctx.source_normalization = record.to_dict()
        ctx.log(f"[bold]source[/] normalized on load: {record.summary()}")


def prepare_source(ctx: RunContext) -> Path:
    """Export a Keras file to a SavedModel once; every recipe then converts that directory
    (Keras 3 models convert through export→from_saved_model anyway, tensorflow#63987)."""
    src = Path(ctx.source)
    if src.is_dir() or source_kind(ctx.source) != "tensorflow":  # .tflite and PyTorch: as they are
        return src

    import_tf()
    import keras

    ctx.log(f"[bold]prepare[/] loading {src} and exporting it to a SavedModel once")
    target = ctx.out / "work" / "saved_model"
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
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


def reference_runner(source: Path) -> Any:
    """The source model as a runner, its outputs cached per input (every variant is compared with it)."""
    from liteship.pipeline.cache import CachingRunner
    from liteship.runtime import reference_runner_for

    return CachingRunner(reference_runner_for(source))


def preprocessing_rule(cfg: PipelineConfig, source: Path) -> Any:
    """The one rule (:func:`liteship.model.preprocessing.resolve_preprocessing`): the fields liteship.yaml
    gives override what a ``.tflite`` source declares in its metadata."""
    given = cfg.preprocessing.model_fields_set
    override = {
        k: _tuple(v) if k in ("mean", "std") else v
        for k, v in cfg.preprocessing.model_dump().items()
        if k in given
    }
    tflite = source if str(source).lower().endswith(".tflite") and Path(source).is_file() else None
    return resolve_preprocessing(tflite, override or None)


def check_tflite_source(source: Path) -> None:
    """A .tflite source must be a float model LiteRT's builtin runtime runs: the pipeline converts it and
    runs it as the reference. An already quantized file (a uint8 QAT model) or a Flex model stops here."""
    loaded = load_model(source)
    try:
        check_float_source(loaded, f"source {str(source)!r}")
        check_builtin_ops(loaded, f"source {str(source)!r}")
    except ConversionError as e:
        raise PipelineError(
            f"{e.message} The pipeline converts a float model and runs it as the reference.",
            hint=e.hint,
        ) from e


def _tuple(v: Any) -> tuple[float, ...]:
    return tuple(v) if isinstance(v, (list, tuple)) else (float(v),)


__all__ = ["open_context", "prepare", "preprocessing_rule"]
