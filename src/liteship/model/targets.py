"""Where a .tflite can run: one table of rules per deployment target, and the check that applies it.

Every rule carries its source. The op lists are read from the runtimes' own code or documentation (as
of the revisions noted); they are a conservative reading, not a promise. An op missing from a delegate's
list only makes the verdict more cautious ("partial": it runs on the CPU), never wrongly "ok".

Verdicts:
    ``ok``       every op runs on the target.
    ``partial``  the model runs, but some ops fall back to the CPU kernels (slower, extra copies).
    ``blocked``  the model cannot run on the target as it is.

No TensorFlow here: the check reads :class:`ModelFacts` that :mod:`liteship.model.inspect` gathers from
the flatbuffer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from liteship.errors import LiteshipError, UsageError
from liteship.types import ReportMixin

OK, PARTIAL, BLOCKED = "ok", "partial", "blocked"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ---------------------------------------------------------------------------------------------------------
# Op lists. Sources beside each.
# ---------------------------------------------------------------------------------------------------------

# tensorflow/lite/kernels/register.cc (BuiltinOpResolver): the custom ops the stock interpreter registers
# next to every builtin.
CPU_CUSTOM_OPS = frozenset({"Mfcc", "AudioSpectrogram", "TFLite_Detection_PostProcess", "NumericVerify"})

# tensorflow/lite/delegates/xnnpack/README.md, "Floating-Point Operators" (plus ops added in later
# revisions of that list: CONCATENATION, SLICE, SPLIT, STRIDED_SLICE, TANH, TRANSPOSE, TRANSPOSE_CONV,
# BATCH_MATMUL). Anything else stays on the default CPU kernels.
XNNPACK_FLOAT_OPS = _names(
    "ABS ADD AVERAGE_POOL_2D CEIL CONV_2D DEPTH_TO_SPACE DEPTHWISE_CONV_2D DIV ELU FULLY_CONNECTED FLOOR "
    "HARD_SWISH LEAKY_RELU LOGISTIC MAX_POOL_2D MAXIMUM MEAN MINIMUM MUL NEG PAD PRELU RELU RELU6 "
    "RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR ROUND SOFTMAX SQRT SQUARE SQUARED_DIFFERENCE SUB "
    "CONCATENATION SLICE SPLIT STRIDED_SLICE TANH TRANSPOSE TRANSPOSE_CONV BATCH_MATMUL"
)
# Same README, "Quantized Operators" (8-bit signed and unsigned schemes), plus MEAN and RESHAPE, which
# ai-edge-litert 2.3's XNNPACK was observed to take on int8/uint8 models (and AVERAGE_POOL_2D / SOFTMAX
# observed not to); tests/unit/model/test_targets.py checks this table against the runtime's partition.
XNNPACK_QUANT_OPS = _names(
    "ADD CONV_2D DEPTHWISE_CONV_2D ELU FULLY_CONNECTED LOGISTIC MAX_POOL_2D MEAN MUL PAD RESHAPE SUB"
)

# tensorflow/lite/delegates/gpu/common/model_builder.cc, NewOperationParser() (2021 revision). QUANTIZE
# and DEQUANTIZE are parsed when quantized models are allowed, which is the delegate's default.
GPU_OPS = _names(
    "ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CONCATENATION CONV_2D COS DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU "
    "EXP FULLY_CONNECTED HARD_SWISH LOGISTIC LOG LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG "
    "PACK PAD POW REDUCE_MAX REDUCE_MIN REDUCE_PROD QUANTIZE RELU RELU6 LEAKY_RELU PRELU RESHAPE "
    "RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT_V SQRT SQUARE "
    "SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM TANH TRANSPOSE TRANSPOSE_CONV"
)
# model_builder.cc, IsAllAllowedTensors(): runtime (non-constant) tensors must be one of these.
GPU_RUNTIME_DTYPES = frozenset({"float32", "float16", "int8", "uint8"})

# coral.ai/docs/edgetpu/models-intro/#supported-operations (Edge TPU compiler 16).
EDGETPU_OPS = _names(
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D EXPAND_DIMS FULLY_CONNECTED "
    "L2_NORMALIZATION LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL PACK PAD PRELU QUANTIZE "
    "REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT "
    "SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQUEEZE STRIDED_SLICE SUB SUM SQUARED_DIFFERENCE TANH TRANSPOSE "
    "TRANSPOSE_CONV"
)
# A model already compiled by edgetpu_compiler carries its Edge TPU part as this custom op.
EDGETPU_CUSTOM_OPS = frozenset({"edgetpu-custom-op"})

# tensorflow/tflite-micro, tensorflow/lite/micro/micro_mutable_op_resolver.h: the Add*() builtins.
MICRO_OPS = _names(
    "ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND "
    "BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTH_TO_SPACE "
    "DEPTHWISE_CONV_2D DEQUANTIZE DIV EMBEDDING_LOOKUP ELU EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV "
    "FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION "
    "L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX "
    "MAXIMUM MAX_POOL_2D MIRROR_PAD MEAN MINIMUM MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE "
    "READ_VARIABLE REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR "
    "REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT "
    "SPLIT_V SQUEEZE SQRT SQUARE SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE_CONV "
    "TRANSPOSE UNPACK UNIDIRECTIONAL_SEQUENCE_LSTM VAR_HANDLE WHILE ZEROS_LIKE"
)
# Same header: the custom ops it can register (AddCustom).
MICRO_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "CIRCULAR_BUFFER", "ETHOSU"}) | {
    f"Signal{n}"
    for n in _names(
        "Delay Energy FftAutoScale FilterBank FilterBankLog FilterBankSquareRoot "
        "FilterBankSpectralSubtraction Framer Irfft OverlapAdd PCAN Rfft Stacker Window"
    )
}
# tflite-micro kernels compute on int8/int16 quantized and float32 tensors; uint8 (asymmetric, TF1-style)
# kernels were removed in 2021 and string tensors were never supported.
MICRO_RUNTIME_DTYPES = frozenset({"float32", "int8", "int16", "int32", "int64", "bool"})

# Ops whose job is converting between types: the type checks above do not apply to them.
CONVERSION_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


@dataclass(frozen=True)
class Target:
    """One deployment target and its rules (the row of the table).

    Attributes:
        name: CLI name (``cpu``, ``xnnpack``, ``gpu``, ``edgetpu``, ``micro``).
        title: Human name.
        ops: Builtin ops the target executes; ``None`` means every builtin.
        quant_ops: For ops whose runtime tensors are 8-bit quantized, the subset the target executes;
            ``None`` means the same as ``ops``.
        custom_ops: Custom (non-Flex) ops the target ships kernels for.
        unsupported: What happens to an op outside ``ops``: ``"partial"`` (CPU fallback) or ``"blocked"``.
        runtime_dtypes: Allowed dtypes of non-constant tensors of a delegated op; ``None``: any.
        kinds_blocked: Model kinds (see ``InspectReport.kind``) the target cannot run at all, with why.
        kinds_partial: Model kinds whose quantized part runs but the rest falls back, with why.
        static_shapes: Whether dynamic dimensions (``-1``) block the model.
        dynamic_batch_ok: With ``static_shapes``, whether a dynamic batch dimension alone is fine
            (the runtime allocates the stored ``shape``, whose batch the converter writes as 1); the
            verdict then carries a note saying so.
        max_subgraphs: Subgraph limit; ``None`` for none.
        sources: Where these rules come from.
    """

    name: str
    title: str
    ops: frozenset[str] | None
    quant_ops: frozenset[str] | None = None
    custom_ops: frozenset[str] = CPU_CUSTOM_OPS
    unsupported: str = PARTIAL
    runtime_dtypes: frozenset[str] | None = None
    kinds_blocked: dict[str, str] = field(default_factory=dict)
    kinds_partial: dict[str, str] = field(default_factory=dict)
    static_shapes: bool = False
    dynamic_batch_ok: bool = False
    max_subgraphs: int | None = None
    sources: tuple[str, ...] = ()


FLEX_WHY = (
    "a TensorFlow (Flex) op: only the Select-TF-ops runtime (tf.lite.Interpreter, or a LiteRT build "
    "linked with the Flex delegate) runs it, and no hardware delegate does"
)

TARGETS: dict[str, Target] = {
    "cpu": Target(
        "cpu",
        "LiteRT CPU (builtin kernels)",
        ops=None,
        unsupported=BLOCKED,
        sources=("tensorflow/lite/kernels/register.cc (BuiltinOpResolver)",),
    ),
    "xnnpack": Target(
        "xnnpack",
        "XNNPACK delegate",
        ops=XNNPACK_FLOAT_OPS,
        quant_ops=XNNPACK_QUANT_OPS,
        runtime_dtypes=frozenset({"float32", "int8", "uint8"}),
        kinds_partial={
            "dynamic-range": "XNNPACK README: hybrid (dynamic-range) ops are not delegated; "
            "they run on the CPU kernels",
        },
        sources=("tensorflow/lite/delegates/xnnpack/README.md (supported operators)",),
    ),
    "gpu": Target(
        "gpu",
        "GPU delegate",
        ops=GPU_OPS,
        runtime_dtypes=GPU_RUNTIME_DTYPES,
        sources=(
            "tensorflow/lite/delegates/gpu/common/model_builder.cc (NewOperationParser, IsAllAllowedTensors)",
            "LiteRT GPU delegate docs: unsupported ops run on the CPU",
        ),
    ),
    "edgetpu": Target(
        "edgetpu",
        "Coral Edge TPU",
        ops=EDGETPU_OPS,
        custom_ops=EDGETPU_CUSTOM_OPS,
        kinds_blocked={
            k: "the Edge TPU runs only models that are fully 8-bit quantized (coral.ai models-intro)"
            for k in ("float32", "float16", "dynamic-range", "int16x8")
        },
        kinds_partial={
            "mixed": "float ops stay on the CPU: the compiler maps ops only up to the first unsupported one",
        },
        static_shapes=True,  # and a dynamic batch fails too: google-coral/edgetpu#829 ("static-sized")
        max_subgraphs=1,
        sources=(
            "coral.ai/docs/edgetpu/models-intro: fully 8-bit quantized, static tensor sizes, one subgraph, "
            "supported-operations table; ops after the first unsupported op run on the CPU",
        ),
    ),
    "micro": Target(
        "micro",
        "TensorFlow Lite Micro",
        ops=MICRO_OPS,
        custom_ops=MICRO_CUSTOM_OPS,
        unsupported=BLOCKED,
        kinds_blocked={
            "dynamic-range": "TFLM kernels reject hybrid models ('Hybrid models are not supported on "
            "TFLite Micro', kernels/fully_connected.cc, conv.cc)",
            "float16": "TFLM has no float16 kernels (its DEQUANTIZE takes int8/int16/uint8)",
        },
        runtime_dtypes=MICRO_RUNTIME_DTYPES,
        static_shapes=True,
        # A dynamic batch is fine, with a note: TFLM sizes every tensor from the flatbuffer's Tensor.shape
        # (where the converter writes the batch as 1) and never reads shape_signature, and it cannot
        # resize, so the model runs at that stored batch. Only -1 beyond the batch blocks it.
        dynamic_batch_ok=True,
        sources=(
            "tensorflow/tflite-micro micro_mutable_op_resolver.h (op list); no CPU fallback on a "
            "microcontroller; the arena is planned once, so tensor sizes must be static",
            "tensorflow/tflite-micro micro_allocator.cc InitializeTfLiteTensorFromFlatbuffer: dims come from "
            "Tensor.shape, shape_signature is not read, tensors are never resized (a dynamic batch runs at "
            "the stored batch)",
        ),
    ),
}

TARGET_NAMES: tuple[str, ...] = tuple(TARGETS)


@dataclass(frozen=True)
class OpUse:
    """One operator instance, as the rules need it.

    Attributes:
        name: Builtin name (``CONV_2D``) or custom code (``FlexErf``).
        category: ``"builtin"``, ``"custom"`` or ``"flex"``.
        runtime_dtypes: Dtypes of its non-constant inputs and outputs.
        fp16_weights: A DEQUANTIZE of constant float16 weights, which delegates fold away.
    """

    name: str
    category: str
    runtime_dtypes: frozenset[str] = frozenset()
    fp16_weights: bool = False

    @property
    def quantized(self) -> bool:
        """Runs on 8-bit quantized tensors (and no float ones), so a delegate's quantized list applies."""
        dtypes = self.runtime_dtypes
        return bool(dtypes & {"int8", "uint8"}) and not dtypes & {"float32", "float16"}


@dataclass(frozen=True)
class ModelFacts:
    """What the rules look at: gathered from the flatbuffer by :mod:`liteship.model.inspect`.

    ``dynamic_shapes`` names tensors with a ``-1`` beyond the batch dimension; ``dynamic_batch`` those
    whose only ``-1`` is the batch (Keras exports leave it open).
    """

    kind: str
    subgraphs: int
    dynamic_shapes: tuple[str, ...]
    ops: tuple[OpUse, ...]
    dynamic_batch: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetVerdict(ReportMixin):
    """Whether a model can run on one target.

    Attributes:
        target: Target name.
        title: Human name of the target.
        verdict: ``"ok"``, ``"partial"`` or ``"blocked"``.
        reasons: Why it is not ``ok``: one sentence per problem.
        blocking_ops: ``{op: why}`` for ops that stop the model from running there.
        fallback_ops: ``{op: why}`` for ops that run, but on the CPU instead of the target.
        sources: Where the rules come from.
        notes: What holds even when the verdict is ``ok`` (e.g. a dynamic batch the target fixes).
        basis: ``"rules"`` (this table) or ``"probed"`` (the model was compiled with the real
            accelerator here and LiteRT reported what ran there: see :func:`probe_target`).
        accelerated_ops: With ``basis="probed"``, ops LiteRT placed on the accelerator (``None``: it
            did not say).
        total_ops: With ``basis="probed"``, ops LiteRT counted in the model (``None``: it did not say).
    """

    target: str
    title: str
    verdict: str
    reasons: tuple[str, ...] = ()
    blocking_ops: dict[str, str] = field(default_factory=dict)
    fallback_ops: dict[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    basis: str = "rules"
    accelerated_ops: int | None = None
    total_ops: int | None = None


PROBED_TARGETS = {"gpu": "gpu", "cpu": "cpu"}  # target → the CompiledModel accelerator that probes it


def probe_target(model: bytes, verdict: TargetVerdict) -> TargetVerdict:
    """Replace a rule-table verdict with what LiteRT does here: compile ``model`` for the target's
    accelerator alone (CompiledModel API) and read back where the ops went.

    Targets that cannot be compiled here (Edge TPU, microcontrollers, XNNPACK as a delegate of the
    Interpreter) and accelerators that fail to initialise (no GPU device) keep the rules verdict, with a
    note saying why it was not probed.
    """
    accel = PROBED_TARGETS.get(verdict.target)
    if accel is None:
        return dataclasses.replace(
            verdict, notes=(*verdict.notes, "not probed: no runtime for this target here; from rules.")
        )
    from liteship.runtime.compiled import AcceleratorError, CompiledModelRunner  # runtime imports model

    source = "probed: LiteRT CompiledModel, compiled for the " + accel + " accelerator on this machine"
    try:
        runner = CompiledModelRunner(model, accelerator=accel)
    except AcceleratorError as e:
        placement = e.details.get("placement")
        if placement is None or not placement.rejected:  # it did not start: nothing learnt of the model
            return dataclasses.replace(
                verdict, notes=(*verdict.notes, f"not probed ({e.message}); from rules.")
            )
        rejected, on_acc, on_cpu = placement.rejected, placement.accelerated_ops, placement.cpu_ops
        total = on_acc + on_cpu if on_acc is not None and on_cpu is not None else None
        counted = f"{on_acc} of {total} ops ran on the {accel}; " if total is not None else ""
        return TargetVerdict(
            verdict.target,
            verdict.title,
            PARTIAL,
            reasons=(
                f"{counted}LiteRT rejected {', '.join(r.op for r in rejected)} (they run on the CPU "
                f"with accelerator '{accel},cpu').",
            ),
            fallback_ops={r.op: r.reason.rstrip(".") for r in rejected},
            sources=(source,),
            notes=(
                (*verdict.notes, "LiteRT did not name the ops: found by compiling the model's ops alone.")
                if placement.found_by == "bisection"
                else verdict.notes
            ),
            basis="probed",
            accelerated_ops=on_acc,
            total_ops=total,
        )
    except LiteshipError as e:
        return TargetVerdict(
            verdict.target, verdict.title, BLOCKED, reasons=(e.message,), sources=(source,), basis="probed"
        )
    with runner:
        p = runner.placement
    total = p.accelerated_ops + p.cpu_ops if p.accelerated_ops is not None and p.cpu_ops is not None else None
    return TargetVerdict(
        verdict.target,
        verdict.title,
        OK,
        reasons=(),
        sources=(source,),
        notes=(*verdict.notes, f"every op compiled for the {accel} accelerator ({runner.backend})."),
        basis="probed",
        accelerated_ops=p.accelerated_ops,
        total_ops=total,
    )


def resolve_targets(names: Iterable[str] | None) -> tuple[str, ...]:
    """Validate target names; ``None``, empty or ``"all"`` means every target.

    Raises:
        UsageError: An unknown target name.
    """
    wanted = [n.lower() for n in (names or ())]
    if not wanted or "all" in wanted:
        return TARGET_NAMES
    unknown = sorted(set(wanted) - set(TARGETS))
    if unknown:
        raise UsageError(
            f"unknown target(s) {', '.join(unknown)}; expected some of {', '.join(TARGET_NAMES)} or 'all'."
        )
    return tuple(dict.fromkeys(wanted))


def check_target(facts: ModelFacts, name: str) -> TargetVerdict:
    """Apply the rules of target ``name`` to a model.

    Args:
        facts: The model's kind, subgraph count, dynamic tensors and operators.
        name: One of :data:`TARGET_NAMES`.

    Returns:
        The verdict with every reason and the ops involved.
    """
    t = TARGETS[resolve_targets([name])[0]]
    blocked: list[str] = []
    partial: list[str] = []
    notes: list[str] = []
    if facts.kind in t.kinds_blocked:
        blocked.append(f"model is {facts.kind}: {t.kinds_blocked[facts.kind]}.")
    elif facts.kind in t.kinds_partial:
        partial.append(f"model is {facts.kind}: {t.kinds_partial[facts.kind]}.")
    if t.static_shapes and facts.dynamic_shapes:
        blocked.append(
            f"dynamic tensor shapes ({_first(facts.dynamic_shapes)}); {t.title} needs static shapes."
        )
    elif t.static_shapes and facts.dynamic_batch and not t.dynamic_batch_ok:
        blocked.append(
            f"dynamic batch dimension ({_first(facts.dynamic_batch)}); {t.title} needs static shapes. "
            "Convert with a fixed batch size, e.g. keras.Input(shape, batch_size=1)."
        )
    elif t.static_shapes and facts.dynamic_batch:
        notes.append(
            f"dynamic batch dimension ({_first(facts.dynamic_batch)}): {t.title} ignores shape_signature "
            "and cannot resize tensors, so the model runs at the batch stored in its shapes (1 as the "
            "converter writes it)."
        )
    if t.max_subgraphs is not None and facts.subgraphs > t.max_subgraphs:
        blocked.append(f"{facts.subgraphs} subgraphs; {t.title} supports {t.max_subgraphs}.")
    blocking, fallback = _check_ops(t, facts.ops)
    if blocking:
        blocked.append(f"{len(blocking)} op type(s) cannot run: {', '.join(sorted(blocking))}.")
    if fallback:
        partial.append(f"{len(fallback)} op type(s) fall back to the CPU: {', '.join(sorted(fallback))}.")
    verdict = BLOCKED if blocked else PARTIAL if partial else OK
    return TargetVerdict(
        t.name, t.title, verdict, tuple(blocked + partial), blocking, fallback, t.sources, tuple(notes)
    )


def _first(names: tuple[str, ...], n: int = 2) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _check_ops(t: Target, ops: Iterable[OpUse]) -> tuple[dict[str, str], dict[str, str]]:
    blocking: dict[str, str] = {}
    fallback: dict[str, str] = {}
    for op in ops:
        why = _op_problem(t, op)
        if why is None:
            continue
        # Flex and unknown custom ops have no kernel anywhere on the target: always blocking.
        if op.category != "builtin" or t.unsupported == BLOCKED:
            blocking.setdefault(op.name, why)
        else:
            fallback.setdefault(op.name, why)
    return blocking, fallback


def _op_problem(t: Target, op: OpUse) -> str | None:
    if op.category == "flex":
        return FLEX_WHY
    if op.category == "custom":
        if op.name in t.custom_ops:
            return None
        return f"custom op with no kernel in {t.title}; the application must register one"
    if op.fp16_weights and t.name in ("xnnpack", "gpu"):
        return None  # both delegates fold float16-weight DEQUANTIZE into the consuming op
    if t.ops is not None and op.name not in t.ops:
        return f"not in the {t.title} op set"
    if op.quantized and t.quant_ops is not None and op.name not in t.quant_ops:
        return f"no 8-bit quantized kernel in {t.title}"
    if t.runtime_dtypes is not None and op.name not in CONVERSION_OPS:
        bad = sorted(op.runtime_dtypes - t.runtime_dtypes)
        if bad:
            return f"{'/'.join(bad)} tensors are not supported by {t.title}"
    return None


__all__ = [
    "probe_target",
    "PROBED_TARGETS",
    "TARGETS",
    "TARGET_NAMES",
    "Target",
    "TargetVerdict",
    "ModelFacts",
    "OpUse",
    "check_target",
    "resolve_targets",
]
