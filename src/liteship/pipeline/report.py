"""Typed results of a pipeline run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from liteship.types import ReportMixin

if TYPE_CHECKING:
    from liteship.pipeline.device_gate import DeviceGate
    from liteship.pipeline.device_profile import DeviceProfile
    from liteship.pipeline.device_select import DeviceSelection


@dataclass(frozen=True)
class VariantResult(ReportMixin):
    """One converted variant with its validation and benchmark figures.

    Latencies are in milliseconds; ``latency`` maps a thread count to its statistics, and ``p50_ms`` etc.
    are taken at ``selection_threads`` (the largest configured thread count).

    A row of ``PipelineReport.variants`` is a variant on the Interpreter (``accelerator`` is ``None``); a
    row of ``PipelineReport.accelerator_pairs`` is a variant on a CompiledModel accelerator
    (``accelerator`` as configured, ``ran_on`` what LiteRT compiled for, ``fully_accelerated`` its
    answer), validated and timed there; ``ok`` false and ``error`` when that accelerator could not run it.
    """

    recipe: str
    path: str | None
    ok: bool
    error: str | None = None
    size_bytes: int | None = None
    ratio_to_float32: float | None = None
    conversion_seconds: float | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    accuracy_drop: float | None = None
    agreement_top1: float | None = None
    agreement_top5: float | None = None
    sqnr_db: float | None = None
    max_abs_error: float | None = None
    validation_passed: bool | None = None
    latency: dict[str, dict[str, float | None]] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    init_ms: float | None = None
    gates_passed: bool | None = None
    failures: list[str] = field(default_factory=list)
    keep_float_layers: list[str] = field(default_factory=list)
    graph_fixes: list[str] = field(default_factory=list)  # equalize, bias_correction
    base_recipe: str | None = None  # the converter recipe (``int8`` for ``int8+mixed``)
    pruned: str | None = None  # why it got only a quick benchmark and a short validation
    validation_samples: int | None = None
    warnings: list[str] = field(default_factory=list)
    latency_samples_ms: list[float] = field(default_factory=list, repr=False)
    confidence_histogram: dict[str, Any] | None = field(default=None, repr=False)
    accelerator: str | None = None
    ran_on: str | None = None
    fully_accelerated: bool | None = None

    @property
    def label(self) -> str:
        """``int8``, or ``int8 on gpu`` for an accelerator pair."""
        return self.recipe if self.accelerator is None else f"{self.recipe} on {self.accelerator}"


@dataclass(frozen=True)
class FixAttempt(ReportMixin):
    """One graph-fix variant tried before any layer was kept in float."""

    variant: str
    fixes: list[str]
    passed: bool
    accuracy: float | None = None
    agreement: float | None = None
    sqnr_db: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class InputCeiling(ReportMixin):
    """The float model fed its inputs rounded to the integer variant's input grid, and nothing else.

    No variant with those integer inputs can do better, however its inside is quantized: when this fails
    the accuracy gates, only float32 model I/O can help (``float_io`` in the repair).

    Attributes:
        input_type: The integer variant's input dtype (``int8``, ``uint8``).
        passed: Whether it meets the accuracy gates.
        failures: The gates it misses.
    """

    input_type: str
    passed: bool
    accuracy: float | None = None
    agreement: float | None = None
    sqnr_db: float | None = None
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Cost(ReportMixin):
    """What the repaired variant costs against full int8 (``base``) and float32 (``none``)."""

    float_layers: int
    size_bytes: int | None = None
    size_vs_int8: float | None = None  # ratio
    size_vs_float32: float | None = None
    p50_ms: float | None = None
    latency_vs_int8: float | None = None  # ratio; > 1 is slower
    latency_vs_float32: float | None = None
    accuracy_recovered: float | None = None  # points (accuracy) or agreement points, vs full int8
    recovered_metric: str | None = None


@dataclass(frozen=True)
class AccuracyRepairReport(ReportMixin):
    """What the pipeline did for an integer variant that failed the accuracy gates.

    Attributes:
        base: The integer variant repaired (``int8`` or ``int8-fallback``).
        skipped: Why nothing ran (the base passes, nothing to start from), else ``None``.
        attempts: Graph-fix variants, in the order tried.
        search: The sensitivity search (``liteship.quantize.SearchResult.to_dict()``), when it ran.
        recipe: The variant that passes the accuracy gates thanks to this, or ``None``.
        float_layers: Its ops kept in float.
        cost: Its price against full int8 and float32.
        input_ceiling: The float model on the integer inputs' grid (see :class:`InputCeiling`), when the
            base variant has integer inputs.
        io_type: The model I/O type the repair's variants use, when it is not the base variant's.
    """

    base: str | None
    skipped: str | None = None
    attempts: list[FixAttempt] = field(default_factory=list)
    search: dict[str, Any] | None = None
    recipe: str | None = None
    float_layers: list[str] = field(default_factory=list)
    cost: Cost | None = None
    seconds: float = 0.0
    input_ceiling: InputCeiling | None = None
    io_type: str | None = None


@dataclass(frozen=True)
class ReleaseVariant(ReportMixin):
    """One variant of a multi-variant release written by the pipeline (issue 24): the variant chosen for
    some hardware groups, packaged with their conditions (``liteship package --variant/--when``).

    Attributes:
        name: The release variant's name (the recipe, made a valid variant name: ``none`` → ``float32``).
        recipe: The pipeline variant it packages.
        default: Whether devices no condition selects run it (the workstation's choice).
        groups: The hardware groups that chose it; ``when`` their conditions
            (``liteship.package.variants.condition_of_group``).
        model: The variant with its metadata (``<model_id>.<name>.tflite``, or ``<model_id>.tflite`` for
            the default).
        package: The signed package's record (``<model_id>-<version>.<name>.lsp``), ``None`` without
            ``package.key``.
    """

    name: str
    recipe: str
    default: bool
    groups: list[str] = field(default_factory=list)
    when: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    package: dict[str, Any] | None = None


@dataclass(frozen=True)
class PipelineReport(ReportMixin):
    """Everything a run produced; ``report.json`` is ``to_dict()`` of this.

    ``chosen`` is the selected variant and ``chosen_accelerator`` the accelerator of the selected pair
    (``None``: the Interpreter); every pair's row is in ``variants`` (Interpreter) or
    ``accelerator_pairs`` (CompiledModel accelerators of ``bench.accelerators``). ``preprocessing`` is the
    rule every stage applied and where it came from (a
    :class:`~liteship.model.preprocessing.PreprocessingRule` dict, with its ``text``);
    ``source_normalization`` what loading a ``.tflite`` source normalized
    (:class:`~liteship.model.normalize.SourceNormalization`), ``None`` for other sources.
    ``device_selection`` is the selection on the fleet devices' figures (``bench.devices``), when asked for;
    ``device_validation`` the gate of every hardware group on the devices' own validation figures
    (``validation.devices``, else ``bench.devices``); ``group_choices`` the variant chosen for each
    hardware group (validation-aware; None: no variant passes there). When the groups chose different
    variants, ``release_variants`` lists the release's packages (the default first, ``chosen`` is the
    default's recipe and ``package`` its package). ``device_profile`` is the per-op profile of the
    shipped variant(s) on the devices (``bench.profile``).
    """

    model_id: str
    version: str
    source: str
    output_dir: str
    objective: str
    selection_threads: int | None
    variants: list[VariantResult]
    chosen: str | None
    chosen_model: str | None = None
    package: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    mixed_precision: AccuracyRepairReport | None = None
    layerwise: list[dict[str, Any]] | None = None
    gates: dict[str, Any] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    report_json: str | None = None
    report_html: str | None = None
    warnings: list[str] = field(default_factory=list)
    accelerator_pairs: list[VariantResult] = field(default_factory=list)
    chosen_accelerator: str | None = None
    preprocessing: dict[str, Any] | None = None
    source_normalization: dict[str, Any] | None = None
    device_selection: DeviceSelection | None = None
    device_validation: DeviceGate | None = None
    group_choices: dict[str, str | None] = field(default_factory=dict)
    release_variants: list[ReleaseVariant] = field(default_factory=list)
    device_profile: DeviceProfile | None = None

    def variant(self, recipe: str, accelerator: str | None = None) -> VariantResult | None:
        """The row of ``recipe`` on the Interpreter, or on ``accelerator``."""
        rows = self.variants if accelerator is None else self.accelerator_pairs
        return next((v for v in rows if v.recipe == recipe and v.accelerator == accelerator), None)
