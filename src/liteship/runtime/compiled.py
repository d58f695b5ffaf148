"""CompiledModelRunner: .tflite models on LiteRT's CompiledModel API, on CPU, GPU or NPU accelerators.

The accelerator is a runner option (``"cpu"``, ``"gpu"``, ``"npu"``, a fallback list such as
``"gpu,cpu"``, or ``"auto"``), not a new code path: the runner behaves like
:class:`~liteship.runtime.LiteRTRunner` (same feed checks, float feeds quantized and integer outputs
dequantized with the model's own scale/zero-point unless ``raw``, same tensor names), so validate and
bench compare and time it like any other runner.

Where the API leaves gaps, the runner fills them:

- LiteRT does not fall back to the CPU when an accelerator fails to *initialise* (e.g. no Vulkan
  device), even with the CPU in the set. The runner then compiles for the CPU alone and says so in
  :attr:`warnings` and :attr:`fallback`.
- LiteRT prints, but does not return, which ops an accelerator rejected. The runner reads that
  native log and reports it as :attr:`placement` (ops on the accelerator, ops on the CPU, each
  rejected op with LiteRT's reason), and names the ops when ``"gpu"`` alone cannot run the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liteship._quiet import native_stderr_captured, native_stderr_silenced
from liteship.errors import AcceleratorError, InferenceError, ModelError
from liteship.model.flatbuffer import LoadedModel, batch_one_copy, load_model, tensor_name
from liteship.runtime.base import Runner
from liteship.runtime.cpu import compiled_model_blocker
from liteship.runtime.litert_env import cores, dist_version, first_line, load_hint
from liteship.runtime.placement import Placement, RejectedOp, parse_placement_log
from liteship.runtime.plan import TensorPlan
from liteship.types import TensorSpec

ACCELERATORS = ("cpu", "gpu", "npu")
_ORDER = {"npu": 0, "gpu": 1, "cpu": 2}
_AUTO = ("gpu", "cpu")  # NPU needs a vendor dispatch library the wheel does not bring
_FAILURES = (ValueError, RuntimeError)
_DTYPES = {"float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"}


def parse_accelerator(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"gpu,cpu"`` → ``("gpu", "cpu")``; ``"auto"`` → ``("auto",)``. Order and duplicates do not matter.

    Raises:
        AcceleratorError: An unknown name, or ``auto`` mixed with others (the CLI turns it into a
            usage error, exit 2).
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(n).strip().lower() for n in items if str(n).strip()]
    if names == ["auto"]:
        return ("auto",)
    bad = [n for n in names if n not in ACCELERATORS]
    if not names or bad:
        raise AcceleratorError(
            f"accelerator {value!r} is not understood"
            + (f" (unknown: {', '.join(bad)})" if bad else "")
            + f"; expected one of {', '.join(ACCELERATORS)}, a comma-separated fallback list such as "
            "'gpu,cpu', or 'auto'.",
            hint="Use 'cpu' (always works), 'gpu,cpu' (GPU with CPU fallback) or 'auto'.",
        )
    return tuple(sorted(set(names), key=_ORDER.__getitem__))


_INIT_FAIL = re.compile(r"Failed to initialize (\w+) environment: (.+)")


def _litert() -> Any:
    """LiteRT's ``compiled_model`` module, once this CPU is known to load its accelerator library."""
    if (why := compiled_model_blocker()) is not None:  # checked before LiteRT loads the library
        raise AcceleratorError(
            f"LiteRT's CompiledModel cannot start: {why}.",
            hint="Run on the Interpreter instead (leave out `accelerator`): XNNPACK runs on this CPU. "
            "A Raspberry Pi 5 (Cortex-A76) has these features.",
        )
    try:
        from ai_edge_litert import compiled_model
    except ImportError as e:
        raise InferenceError(
            f"LiteRT's CompiledModel API is not available ({e}).",
            hint="pip install 'ai-edge-litert>=2' (or use the Interpreter runner, LiteRTRunner).",
        ) from None
    return compiled_model


class CompiledModelRunner(Runner):
    """Run a .tflite with LiteRT's CompiledModel API on a chosen accelerator.

    Args:
        model: Path to a .tflite file, or its bytes. Verified before LiteRT sees it.
        accelerator: ``"cpu"``, ``"gpu"``, ``"npu"``, a fallback list (``"gpu,cpu"``: ops the GPU
            rejects run on the CPU, and a GPU that fails to initialise leaves the whole model on the
            CPU), or ``"auto"`` (``gpu,cpu``). Defaults to ``"cpu"``.
        num_threads: CPU threads. Defaults to the number of cores available to this process.
        raw: Feed and return the model's own dtypes. Defaults to ``False``.
        signature: Signature key to run. Defaults to the first signature, with inputs and outputs named
            by tensor name (as :class:`~liteship.runtime.LiteRTRunner` names the main graph's).
        gpu_fp32: Ask the GPU for float32 kernels (``enforce_f32``). Defaults to ``False``: the GPU may
            compute in float16, as on a device.

    Attributes:
        accelerator: What the model was compiled for in the end, e.g. ``"gpu,cpu"`` or ``"cpu"``.
        requested: What was asked for, e.g. ``"auto"``.
        fallback: Why the runner fell back to the CPU alone, or ``None``.
        placement: Where LiteRT put the ops (:class:`Placement`).
        warnings: What the runner changed to keep going.

    Raises:
        ModelError: LiteRT cannot load the model at all.
        AcceleratorError: The accelerator failed to initialise or rejected ops, and the CPU was not in
            the set; the message names the rejected ops.
    """

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        accelerator: str | Sequence[str] = "cpu",
        num_threads: int | None = None,
        raw: bool = False,
        signature: str | None = None,
        gpu_fp32: bool = False,
    ) -> None:
        loaded = load_model(model)
        self.path = loaded.path
        self.name = Path(loaded.path).name if loaded.path else "model.tflite"
        self.model_bytes = loaded.data
        self._fb = loaded.model
        self.raw = raw
        self.num_threads = num_threads or cores()
        self.gpu_fp32 = gpu_fp32
        self.warnings: list[str] = []
        self.fallback: str | None = None
        wanted = parse_accelerator(accelerator)
        self.requested = ",".join(wanted)
        if set(wanted) - {"cpu"} and (fixed := batch_one_copy(self.model_bytes)) is not None:
            # GPU/NPU accelerators compile static shapes only; other batch sizes run sample by sample
            self.model_bytes, self._fb = fixed, load_model(fixed).model
            self.warnings.append(
                f"{self.name} has a dynamic batch; it was compiled with batch 1 for {self.requested} "
                "(accelerators take static shapes; larger batches run one sample at a time)."
            )
        self._cm = _litert()
        self._model: Any = None
        self._model, self.placement = self._compile_with_fallback(_AUTO if wanted == ("auto",) else wanted)
        self.accelerator = self.placement.accelerator
        self.backend = f"ai-edge-litert {dist_version('ai-edge-litert')} CompiledModel on {self.accelerator}"
        self._warm: set[str] = set()
        self.signatures: dict[str, dict[str, list[str]]] = dict(self._model.get_signature_list())
        self._setup_io(signature)

    # -- compilation --------------------------------------------------------------------------------------
    def _compile_with_fallback(self, accels: tuple[str, ...]) -> tuple[Any, Placement]:
        if "npu" in accels and (why := npu_unavailable()) is not None:
            # LiteRT itself compiles "npu,cpu" for the CPU without a word, and reports it fully accelerated
            e = self._no_npu(accels, why)
            if accels == ("npu",):
                raise e
            accels = tuple(a for a in accels if a != "npu")
            self.fallback = e.message
            self.warnings.append(f"{e.message} Running on {','.join(accels)} (the set allows it).")
        try:
            return self.compile(accels)
        except AcceleratorError as e:
            if "cpu" not in accels or accels == ("cpu",):
                raise
            self.fallback = e.message
            self.warnings.append(f"{e.message} Running on the CPU alone ({','.join(accels)} allows it).")
            return self.compile(("cpu",))

    def compile(self, accels: tuple[str, ...]) -> tuple[Any, Placement]:
        """Compile the model for ``accels``; ``(compiled model, placement)``.

        Raises:
            ModelError: The CPU alone cannot load the model.
            AcceleratorError: The accelerator failed to initialise or rejected ops.
        """
        if "gpu" in accels and "tensorflow" in sys.modules:
            raise AcceleratorError(
                f"the {','.join(accels)} accelerator cannot start for {self.name} in a process that has "
                "imported TensorFlow: ai-edge-litert 2.3's GPU accelerator crashes the process there.",
                hint="Run on the GPU in a process without TensorFlow (the device side never imports it; "
                "`liteship run`, `bench` and `validate` of .tflite files do not either).",
            )
        cm = self._cm
        options = _options(cm, accels, self.num_threads, self.gpu_fp32)
        label = ",".join(accels)
        error: str | None = None
        with native_stderr_captured() as log:  # also covers the teardown of a failed attempt
            try:
                model = cm.CompiledModel.from_buffer(self.model_bytes, options=options)
                fully = model.is_fully_accelerated()
            except _FAILURES as e:
                error = str(e) or type(e).__name__  # the exception (and LiteRT's environment) dies here
        rejected, on_acc, on_cpu = parse_placement_log(log.text)
        if error is None:
            _quiet_at_exit()
            return model, Placement(label, fully, on_acc, on_cpu, rejected)
        if accels == ("cpu",):
            raise ModelError(
                f"LiteRT (CompiledModel) cannot load {self.name}: {_native_reason(log.text, error)}",
                hint=load_hint(log.text + error),
            )
        raise self._accelerator_error(label, log.text, error, rejected, on_acc, on_cpu)

    def _no_npu(self, accels: tuple[str, ...], why: str) -> AcceleratorError:
        label = ",".join(accels)
        rest = ",".join(a for a in accels if a != "npu") or "cpu"
        e = AcceleratorError(
            f"the {label} accelerator failed to initialise for {self.name}: there is no usable NPU here — {why}.",
            hint=f"Use accelerator='{rest}' (or 'npu,cpu' to fall back to the CPU). For an NPU: the vendor's "
            "runtime and driver (e.g. OpenVINO and an Intel NPU for ai-edge-litert's IntelOpenvino dispatch "
            "library; Qualcomm, MediaTek and Google Tensor ship theirs with the device), then check with "
            "`liteship inspect MODEL --probe`.",
        )
        e.details["placement"] = Placement(label, None, error=why)
        return e

    def _accelerator_error(
        self,
        label: str,
        text: str,
        error: str,
        rejected: tuple[RejectedOp, ...],
        on_acc: int | None,
        on_cpu: int | None,
    ) -> AcceleratorError:
        placement = Placement(label, None, on_acc, on_cpu, rejected, _native_reason(text, error))
        fallback = f"{label},cpu" if "cpu" not in label else "cpu"
        if rejected:
            ops = "; ".join(f"{r.op} ({r.reason.rstrip('.')})" for r in rejected)
            count = (
                f" ({on_cpu} of {on_acc + on_cpu} ops)" if on_acc is not None and on_cpu is not None else ""
            )
            e = AcceleratorError(
                f"the {label} accelerator cannot run every op of {self.name}: it rejects {ops}{count}.",
                hint=f"Allow a CPU fallback (accelerator='{fallback}'), or replace those ops.",
            )
        elif _DYNAMIC in text:
            e = AcceleratorError(
                f"the {label} accelerator cannot run {self.name}: {_native_reason(text, error)}.",
                hint=f"Re-convert with static shapes, or use accelerator='{fallback}' to run on the CPU.",
            )
        elif "not accelerated" in error and not _INIT_FAIL.search(text) and (blamed := self._bisect(label)):
            from liteship.runtime.blame import describe

            placement = dataclasses.replace(
                placement,
                rejected=tuple(RejectedOp(b.op, f"rejected when compiled alone: {b.reason}") for b in blamed),
                found_by="bisection",
            )
            e = AcceleratorError(
                f"the {label} accelerator cannot run every op of {self.name}: it rejects {describe(blamed)} "
                "(LiteRT did not name them; found by compiling the model's ops alone).",
                hint=f"Allow a CPU fallback (accelerator='{fallback}'), or replace those ops.",
            )
        elif "not accelerated" in error and not _INIT_FAIL.search(text):
            e = AcceleratorError(
                f"the {label} accelerator cannot run every op of {self.name}, and LiteRT did not say which "
                f"({_native_reason(text, error)}).",
                hint=_init_hint(label, fallback),
            )
        else:
            init = _INIT_FAIL.search(text)
            why = f"{init[1]}: {init[2].strip()}" if init else _native_reason(text, error)
            e = AcceleratorError(
                f"the {label} accelerator failed to initialise for {self.name}: {why}.",
                hint=_init_hint(label, fallback),
            )
        e.details["placement"] = placement
        return e

    def _bisect(self, label: str) -> tuple[Any, ...]:
        """The ops to blame when LiteRT rejects the model without naming them (:mod:`.blame`)."""
        from liteship.runtime.blame import blame_ops

        accels = parse_accelerator(label)
        loaded = LoadedModel(self.model_bytes, self._fb, self.path)
        return blame_ops(loaded, rejection_checker(accels, num_threads=self.num_threads))

    # -- I/O ----------------------------------------------------------------------------------------------
    def _setup_io(self, signature: str | None) -> None:
        if not self.signatures:
            raise ModelError(f"LiteRT reports no signature for {self.name}.", hint=load_hint(""))
        if signature is not None and signature not in self.signatures:
            raise InferenceError(
                f"{self.name} has no signature {signature!r}; it has {sorted(self.signatures)}.",
                hint="Pass one of those as signature=, or signature=None for the first.",
            )
        self.signature = signature
        self._key = signature or next(iter(self.signatures))
        self._sig_index = int(self._model.get_signature_index(self._key))
        self._by_tensor_name = signature is None
        self._read_details()
        self._invoke_ready = False

    def _read_details(self) -> None:
        ins = self._model.get_input_tensor_details(self._key)
        outs = self._model.get_output_tensor_details(self._key)
        subgraph = self._fb.subgraphs[max(self._sig_index, 0)] if self._fb.subgraphs else None
        self._in = [self._plan(k, d, subgraph) for k, d in ins.items()]
        self._out = [self._plan(k, d, subgraph) for k, d in outs.items()]
        with native_stderr_silenced():  # "Failed to get buffer requirements" for host-memory tensors
            self._in_buffers = self._model.create_input_buffers(self._sig_index)
            self._out_buffers = self._model.create_output_buffers(self._sig_index)

    def _plan(self, key: str, detail: dict[str, Any], subgraph: Any) -> TensorPlan:
        dtype = str(detail["dtype"])
        if dtype not in _DTYPES:
            raise ModelError(
                f"{self.name}: tensor {key!r} has dtype {dtype}, which this runner does not handle.",
                hint="Run the model with the Interpreter runner (LiteRTRunner).",
            )
        shape = tuple(int(s) for s in detail["shape"])
        tensor = _tensor(subgraph, detail.get("index"))
        name, signature_shape, scale, zp = key, shape, None, None
        if tensor is not None:
            if self._by_tensor_name and tensor.name:
                name = tensor_name(tensor)
            if tensor.shapeSignature is not None and len(tensor.shapeSignature) == len(shape):
                signature_shape = tuple(int(s) for s in tensor.shapeSignature)
            q = tensor.quantization
            if q is not None and q.scale is not None and len(q.scale) == 1 and np.dtype(dtype).kind in "iu":
                scale, zp = float(q.scale[0]), int(q.zeroPoint[0]) if q.zeroPoint is not None else 0
        spec = TensorSpec(name, signature_shape, dtype, scale, zp)
        return TensorPlan(spec, key, shape, np.dtype(dtype), spec.quantized and not self.raw)

    @property
    def input_specs(self) -> list[TensorSpec]:
        return [p.spec for p in self._in]

    @property
    def output_specs(self) -> list[TensorSpec]:
        return [p.spec for p in self._out]

    @property
    def asynchronous(self) -> bool:
        """Whether a run may return before its outputs are ready (any non-CPU accelerator)."""
        return self.accelerator != "cpu"

    def is_fully_accelerated(self) -> bool | None:
        """LiteRT's own answer: did every op land on the non-CPU accelerator?"""
        return self.placement.fully_accelerated

    def accepts_dtype(self, spec: TensorSpec, dtype: np.dtype) -> bool:
        if spec.quantized:
            return dtype == np.dtype(spec.dtype) or (not self.raw and dtype.kind == "f")
        return super().accepts_dtype(spec, dtype)

    # -- running ------------------------------------------------------------------------------------------
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if any(feed[p.spec.name].shape != p.current for p in self._in):
            return self._infer_per_sample(feed)
        self.set_inputs(feed, checked=True)
        self.invoke()
        return self.get_outputs()

    def _infer_per_sample(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A batch other than the compiled one, one sample at a time. ai-edge-litert 2.3's CompiledModel
        resizes inputs but not the outputs that depend on them (its output buffers keep the compiled
        size, and running into them overruns memory), so the runner does not resize."""
        batches = {int(a.shape[0]) for a in feed.values() if a.ndim}
        if len(batches) != 1 or not all(
            feed[p.spec.name].shape[1:] == p.current[1:] and p.current[:1] == (1,) for p in self._in
        ):
            shapes = {k: list(v.shape) for k, v in feed.items()}
            raise InferenceError(
                f"{self.name} is compiled for inputs {[list(p.current) for p in self._in]}; got {shapes}. "
                "The CompiledModel runner runs other batch sizes one sample at a time, and no other shape.",
                hint="Feed the compiled shapes (other batch sizes are fine), or use the Interpreter runner "
                "(no accelerator), which resizes inputs.",
            )
        batch = batches.pop()
        if not any("one sample at a time" in w for w in self.warnings):
            self.warnings.append(
                f"{self.name}: batches of {batch} run one sample at a time (the CompiledModel API cannot "
                "resize this model's outputs)."
            )
        results = []
        for i in range(batch):
            self.set_inputs({k: v[i : i + 1] for k, v in feed.items()}, checked=True)
            self.invoke()
            results.append(self.get_outputs())
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}

    def set_inputs(self, feed: Any, *, checked: bool = False) -> None:
        """Check and convert ``feed`` and write it into the input TensorBuffers.

        Raises:
            InferenceError: The feed does not match the compiled input shapes (:meth:`infer` runs other
                batch sizes one sample at a time).
        """
        if self._model is None:
            raise InferenceError(f"the runner for {self.name} is closed.", hint="Create a new runner.")
        feed = feed if checked else self.check_feed(feed)
        self._invoke_ready = False
        arrays = [np.ascontiguousarray(p.to_model(feed[p.spec.name])) for p in self._in]
        wrong = {
            p.spec.name: list(a.shape) for p, a in zip(self._in, arrays, strict=True) if a.shape != p.current
        }
        if wrong:
            raise InferenceError(
                f"{self.name} is compiled for inputs {[list(p.current) for p in self._in]}; got {wrong}.",
                hint="Feed the compiled shapes; infer() runs other batch sizes one sample at a time.",
            )
        try:
            with self._quiet_first("write"):
                for buf, a in zip(self._in_buffers, arrays, strict=True):
                    buf.write(a)
        except _FAILURES as e:
            raise InferenceError(f"LiteRT could not take the inputs of {self.name}: {first_line(e)}") from e
        self._invoke_ready = True

    def invoke(self) -> None:
        """Run once on the inputs of the last :meth:`set_inputs`. Asynchronous accelerators may still be
        working when this returns: :meth:`get_outputs` waits for them (it locks the output buffers)."""
        if not self._invoke_ready or self._model is None:
            raise InferenceError(
                f"no inputs are set on the runner for {self.name} (or it is closed).",
                hint="Call set_inputs(feed) before invoke(), on an open runner.",
            )
        try:
            if "run" in self._warm:  # the hot path, as lean as the tool's loop (no context manager)
                self._model.run_by_index(self._sig_index, self._in_buffers, self._out_buffers)
            else:
                with self._quiet_first("run"):
                    self._model.run_by_index(self._sig_index, self._in_buffers, self._out_buffers)
        except _FAILURES as e:
            raise InferenceError(f"LiteRT failed to run {self.name}: {first_line(e)}") from e

    def get_outputs(self) -> dict[str, np.ndarray]:
        """The outputs of the last :meth:`invoke`, read from their TensorBuffers (dequantized unless raw)."""
        if not self._invoke_ready or self._model is None:
            raise InferenceError(
                f"no inputs are set on the runner for {self.name} (or it is closed).",
                hint="Call set_inputs(feed) and invoke() before get_outputs().",
            )
        with self._quiet_first("read"):
            out = {
                p.spec.name: p.from_model(buf.read(p.size, p.dtype).reshape(p.current))
                for p, buf in zip(self._out, self._out_buffers, strict=True)
            }
        return out

    @contextlib.contextmanager
    def _quiet_first(self, stage: str) -> Any:
        """LiteRT sets up an accelerator's buffers and kernels lazily, logging as it goes: the first
        write, run and read are silenced; later ones run without the redirection's cost (~25 µs)."""
        if stage in self._warm:
            yield
            return
        with native_stderr_silenced():
            yield
        self._warm.add(stage)

    def close(self) -> None:
        model, self._model = self._model, None
        with native_stderr_silenced():  # LiteRT logs each accelerator it destroys with the model
            self._in_buffers = []
            self._out_buffers = []
            del model
        self._invoke_ready = False


@functools.cache
def _quiet_at_exit() -> None:
    """LiteRT keeps an accelerator environment to the end of the process and logs its teardown then."""
    import atexit
    import os

    def silence() -> None:
        if not os.environ.get("LITESHIP_VERBOSE"):
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), 2)

    atexit.register(silence)


def _tensor(subgraph: Any, index: Any) -> Any:
    if subgraph is None or index is None or not subgraph.tensors:
        return None
    i = int(index)
    return subgraph.tensors[i] if 0 <= i < len(subgraph.tensors) else None


_DYNAMIC = "only supports static-sized tensors"


def _native_reason(text: str, error: str) -> str:
    """LiteRT's Python error is a source location; the reason is in its native log."""
    if _DYNAMIC in text:
        return (
            "the model has dynamic-sized tensors (a -1 dimension, e.g. the batch), and the accelerator "
            "takes static shapes only; convert with a fixed batch size (e.g. a Keras Input with batch_size=1)"
        )
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("ERROR:", "E0000")) and "Following operations" not in line:
            msg = re.sub(r"^(ERROR:|E\d{4} [\d:.]+ +\d+) *(\[[^\]]*\])? *", "", line)
            msg = re.sub(r"^\S+\.cc:\d+\] *", "", msg)
            if msg and not msg.startswith("["):
                return msg.rstrip(".")
    lines = [ln.strip(" └") for ln in error.splitlines() if ln.strip(" └")]
    return (lines[-1] if lines else error).rstrip(".")


def _options(cm: Any, accels: Sequence[str], num_threads: int, gpu_fp32: bool) -> Any:
    flags = 0
    for a in accels:
        flags |= getattr(cm.HardwareAccelerator, a.upper())
    return cm.Options(
        hardware_accelerators=cm.HardwareAccelerator(flags),
        cpu_options=cm.CpuOptions(num_threads=num_threads),
        gpu_options=cm.GpuOptions(enforce_f32=gpu_fp32) if "gpu" in accels else None,
    )


def rejection_checker(
    accels: Sequence[str], *, num_threads: int = 1, gpu_fp32: bool = False
) -> Callable[[bytes], str | None]:
    """``check(model bytes)``: compile for ``accels`` alone and say why it was rejected, or ``None`` when
    every op landed there (``is_fully_accelerated()``). What :func:`~liteship.runtime.blame.blame_ops`
    asks of each piece of a model. The native log is not read (LiteRT logs each warning once per
    process), and one LiteRT environment serves every check (6× faster than one each on the GPU)."""
    cm = _litert()
    _quiet_at_exit()
    with native_stderr_silenced():
        env = cm.Environment.create(options=cm.EnvironmentOptions(runtime_path=str(Path(cm.__file__).parent)))
    options = _options(cm, tuple(accels), num_threads, gpu_fp32)

    def check(model: bytes) -> str | None:
        return _rejection(cm, env, options, model, tuple(accels))

    return check


def _rejection(cm: Any, env: Any, options: Any, model: bytes, accels: tuple[str, ...]) -> str | None:
    with native_stderr_captured() as log:
        try:
            compiled = cm.CompiledModel.from_buffer(model, options=options, environment=env)
            fully = compiled.is_fully_accelerated() or accels == ("cpu",)
            del compiled
        except _FAILURES as e:
            why = _native_reason(log.text, str(e) or type(e).__name__)
            return "rejected (LiteRT gives no reason)" if "not accelerated" in why else why
    return None if fully else "not every op runs on the accelerator"


@functools.cache
def npu_unavailable() -> str | None:
    """Why LiteRT cannot use an NPU in this process, or ``None`` when a vendor dispatch library loads.

    ai-edge-litert runs a model on an NPU through a vendor's dispatch library
    (``ai_edge_litert/vendors/<vendor>/dispatch/libLiteRtDispatch_*.so``), which needs that vendor's
    runtime. Without one, LiteRT silently compiles ``npu,cpu`` for the CPU alone (and calls it fully
    accelerated) and fails ``npu`` alone with "some ops are not accelerated", which blames the model.
    A library that loads is no proof of an NPU device: compilation then says the rest.
    """
    import ctypes

    try:
        import ai_edge_litert
    except ImportError as e:
        return f"ai-edge-litert is not installed ({e})"
    vendors = Path(ai_edge_litert.__file__).parent / "vendors"
    libs = sorted(vendors.glob("*/dispatch/libLiteRtDispatch_*.so"))
    if not libs:
        return f"ai-edge-litert {dist_version('ai-edge-litert')} has no NPU dispatch library ({vendors}/*/dispatch/)"
    errors = []
    for lib in libs:
        try:
            ctypes.CDLL(str(lib))
            return None
        except OSError as e:
            errors.append(f"{lib.name} does not load: {str(e).split(': cannot open')[0]} is missing")
    return "; ".join(errors)


def _init_hint(label: str, fallback: str) -> str:
    if "gpu" in label:
        return (
            f"Use accelerator='{fallback}' to fall back to the CPU. For the GPU: a Vulkan or OpenCL driver "
            "(on Debian, mesa-vulkan-drivers >= 25 from backports provides a software one: "
            "scripts/os-deps.sh) and XDG_RUNTIME_DIR set to an existing directory."
        )
    return (
        f"Use accelerator='{fallback}' to fall back to the CPU; an NPU needs its vendor's dispatch library."
    )


__all__ = [
    "CompiledModelRunner",
    "AcceleratorError",
    "Placement",
    "RejectedOp",
    "ACCELERATORS",
    "parse_accelerator",
    "parse_placement_log",
    "npu_unavailable",
    "rejection_checker",
]
