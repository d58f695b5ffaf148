"""LiteRTRunner: .tflite models on the LiteRT interpreter (ai-edge-litert), never TensorFlow by default."""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship._quiet import native_stderr_silenced
from liteship.errors import DelegateError, InferenceError, ModelError
from liteship.model.flatbuffer import load_model
from liteship.model.float_input import FloatInputCopy, float_input_copy
from liteship.runtime.base import Feed, FixedSpecsRunner
from liteship.runtime.delegates import (
    DelegateSpec,
    DelegateUsage,
    apply_error,
    delegated_nodes,
    load_delegates,
)
from liteship.runtime.litert_env import cores, dist_version, first_line, load_hint
from liteship.runtime.plan import TensorPlan
from liteship.types import TensorSpec

_FAILURES = (ValueError, RuntimeError)  # what the interpreter raises for model/shape/delegate problems


@dataclass(frozen=True)
class InterpreterModule:
    """The interpreter implementation in use: its classes and a description for reports."""

    Interpreter: Any
    load_delegate: Any
    OpResolverType: Any
    backend: str


# (module, distribution) in order of preference; tf.lite comes last, and only on a workstation
_DEVICE_INTERPRETERS = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


def interpreter_module() -> InterpreterModule:
    """ai-edge-litert, else tflite-runtime, else ``tf.lite`` (deprecated, with a DeprecationWarning).

    Raises:
        InferenceError: None of the three is installed.
    """
    for module, dist in _DEVICE_INTERPRETERS:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        return InterpreterModule(
            mod.Interpreter,
            mod.load_delegate,
            getattr(mod, "OpResolverType", None),  # tflite-runtime before 2.12 has none
            f"{dist} {dist_version(dist)}",
        )
    try:
        import tensorflow as tf  # last resort on a workstation
    except ImportError:
        raise InferenceError(
            "no TFLite interpreter is installed (tried ai-edge-litert, tflite-runtime, tensorflow).",
            hint="pip install ai-edge-litert",
        ) from None
    warnings.warn(
        "ai-edge-litert is not installed; falling back to tf.lite.Interpreter, which is deprecated. "
        "pip install ai-edge-litert",
        DeprecationWarning,
        stacklevel=3,
    )
    exp = tf.lite.experimental
    return InterpreterModule(
        tf.lite.Interpreter,
        exp.load_delegate,
        getattr(exp, "OpResolverType", None),
        f"tf.lite {tf.__version__} (deprecated)",
    )


def interpreter_class() -> tuple[Any, str]:
    """``(Interpreter class, backend description)`` of :func:`interpreter_module`."""
    mod = interpreter_module()
    return mod.Interpreter, mod.backend


def _spec(detail: dict[str, Any], name: str | None = None) -> TensorSpec:
    shape = detail.get("shape_signature")
    if shape is None or len(shape) == 0:
        shape = detail["shape"]
    scale, zp = detail.get("quantization", (0.0, 0))
    quantized = scale not in (0, 0.0) and np.dtype(detail["dtype"]).kind in "iu"
    return TensorSpec(
        name=name or detail["name"],
        shape=tuple(int(s) for s in shape),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale) if quantized else None,
        zero_point=int(zp) if quantized else None,
    )


class LiteRTRunner(FixedSpecsRunner):
    """Run a .tflite with LiteRT.

    Float feeds to integer-quantized inputs are quantized with the model's own scale/zero-point (clipped
    to the dtype) and integer outputs are dequantized; ``raw=True`` passes the model's own dtypes
    through. On the main graph without external delegates, the interpreter runs a copy of the model
    whose int8/uint8 inputs take float32 and are quantized by LiteRT's own QUANTIZE op, as a model
    converted with float I/O is (:mod:`liteship.model.float_input`: one vectorized pass inside
    ``invoke`` instead of several numpy passes; it rounds half to even, where
    :func:`~liteship.runtime.quant.quantize` rounds half away from zero: exact ties differ by one step).
    Integer feeds of the model's dtype reach that tensor unchanged. A batch larger than the model's is run by resizing the inputs when
    the model allows it, otherwise one sample at a time (noted once in :attr:`warnings`).

    Args:
        model: Path to a .tflite file, or its bytes. Verified before the interpreter sees it.
        num_threads: CPU threads. Defaults to the number of cores available to this process.
        delegates: External delegates: paths, ``(path, {option: value})`` or
            :class:`~liteship.runtime.delegates.DelegateSpec`. Defaults to none.
        raw: Feed and return the model's own dtypes. Defaults to ``False``.
        signature: Signature key to run (see :attr:`signatures`). Defaults to the main graph, whose
            inputs and outputs are named by tensor name.
        use_xnnpack: Let the interpreter apply its default XNNPACK delegate. Defaults to ``True``.
        delegate_fallback: When a delegate fails to load or apply, run without it and note it in
            :attr:`warnings` instead of raising. Defaults to ``False``.

    Attributes:
        backend: The interpreter in use, e.g. ``"ai-edge-litert 2.3.0"``.
        signatures: ``{key: {"inputs": [...], "outputs": [...]}}`` of the model's signatures.
        warnings: What the runner changed to keep going (delegate fallbacks, per-sample batching).

    Raises:
        ModelError: The file is not a model the interpreter can load.
        DelegateError: A delegate failed to load or apply (and ``delegate_fallback`` is off).
        InferenceError: No interpreter is installed, or ``signature`` is not one of the model's.

    Example:
        >>> with LiteRTRunner("model.tflite") as r:          # doctest: +SKIP
        ...     probs = r.infer(x)["probs"]
    """

    # The tflite Interpreter (no type stubs); None while unbuilt or once closed. Declared here, not
    # in __init__, so the None set there does not narrow it for the code that follows _build().
    _interp: Any

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        num_threads: int | None = None,
        delegates: Sequence[DelegateSpec | str | Path | tuple[Any, Any]] = (),
        raw: bool = False,
        signature: str | None = None,
        use_xnnpack: bool = True,
        delegate_fallback: bool = False,
    ) -> None:
        loaded = load_model(model)
        self.path = loaded.path
        self.name = Path(loaded.path).name if loaded.path else "model.tflite"
        self.model_bytes = loaded.data
        self.raw = raw
        self.num_threads = num_threads or cores()
        self.use_xnnpack = use_xnnpack
        self.delegate_fallback = delegate_fallback
        self.signature = signature
        self.warnings: list[str] = []
        self._delegate_specs = [DelegateSpec.coerce(d) for d in delegates]
        self._original_nodes = len(loaded.model.subgraphs[0].operators or []) if loaded.model.subgraphs else 0
        self._float_input = self._float_input_copy(loaded.data, raw, signature, self._delegate_specs)
        self._mod = interpreter_module()
        self.backend = self._mod.backend
        self._interp = None
        try:
            self._build()
        except (ModelError, DelegateError):
            if self._float_input is None:
                raise
            self._float_input = None  # the copy did not load: run the model as it is, quantizing in numpy
            self.warnings.clear()
            self._build()
        self.signatures: dict[str, dict[str, list[str]]] = dict(self._interp.get_signature_list())
        self._setup_io()
        self._loop_batches = False

    # -- construction -------------------------------------------------------------------------------------
    @staticmethod
    def _float_input_copy(
        data: bytes, raw: bool, signature: str | None, delegates: list[DelegateSpec]
    ) -> FloatInputCopy | None:
        """The float-input copy the interpreter runs (issue 22 (14)), when the runner quantizes float feeds
        on the main graph with LiteRT's own delegates only; ``None`` otherwise or when it cannot be made."""
        if raw or signature is not None or delegates:
            return None
        try:
            return float_input_copy(data)
        except (
            ModelError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
        ):  # an odd file: numpy quantizes
            return None

    def _build(self) -> None:
        """Create and allocate the interpreter with the delegates; count what each delegate took."""
        loaded = load_delegates(
            self._delegate_specs,
            self._mod.load_delegate,
            fallback=self.delegate_fallback,
            warnings=self.warnings,
        )
        try:
            self._interp, after_init = self._new_interpreter([d for _, d in loaded])
        except _FAILURES as e:
            if not loaded:
                raise ModelError(
                    f"LiteRT cannot load {self.name}: {first_line(e)}", hint=load_hint(str(e))
                ) from e
            error = apply_error([s for s, _ in loaded], e)
            try:  # is it the model or the delegate? Without the delegate tells.
                self._interp, after_init = self._new_interpreter([])
            except _FAILURES as e2:
                raise ModelError(
                    f"LiteRT cannot load {self.name}: {first_line(e2)}", hint=load_hint(str(e2))
                ) from e2
            if not self.delegate_fallback:
                self._interp = None
                raise error from e
            self.warnings.append(f"{error.message} Running on CPU without it (delegate_fallback=True).")
            loaded = []
        self._usage = self._count_delegated([s for s, _ in loaded], after_init)

    def _new_interpreter(self, delegates: list[Any]) -> tuple[Any, int | None]:
        content = self._float_input.data if self._float_input is not None else self.model_bytes
        kwargs: dict[str, Any] = {"model_content": content, "num_threads": self.num_threads}
        if delegates:
            kwargs["experimental_delegates"] = delegates
        if not self.use_xnnpack:
            if self._mod.OpResolverType is None:
                raise DelegateError(
                    f"{self.backend} cannot turn off its default XNNPACK delegate.",
                    hint="Install ai-edge-litert, or keep use_xnnpack=True.",
                )
            kwargs["experimental_op_resolver_type"] = (
                self._mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        with native_stderr_silenced():  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" line
            interp = self._mod.Interpreter(**kwargs)
            after_init = _num_nodes(interp)  # external delegates are applied in the constructor
            interp.allocate_tensors()  # the default (XNNPACK) delegate is applied here
        return interp, after_init

    def _count_delegated(self, specs: list[DelegateSpec], after_init: int | None) -> list[DelegateUsage]:
        total = self._original_nodes
        added = self._float_input.added_ops if self._float_input is not None else 0
        wrapper = getattr(self._interp, "_interpreter", None)
        final = _num_nodes(self._interp)
        groups: list[tuple[str, int | None, int | None]] = []
        if specs:  # several external delegates' kernels cannot be told apart: reported together
            groups.append((" + ".join(s.name for s in specs), total, after_init))
        if self.use_xnnpack:
            groups.append(("XNNPACK", after_init if after_init is not None else None, final))
        usage = []
        for name, start, stop in groups:
            if wrapper is None or start is None or stop is None:
                usage.append(DelegateUsage(name, None, total, 0))
                continue
            nodes, partitions = delegated_nodes(wrapper, total, start, stop, added=added)
            usage.append(DelegateUsage(name, nodes, total, partitions))
        return usage

    def _setup_io(self) -> None:
        if self.signature is not None and self.signature not in self.signatures:
            raise InferenceError(
                f"{self.name} has no signature {self.signature!r}; it has {sorted(self.signatures) or 'none'}.",
                hint="Pass one of those as signature=, or signature=None for the main graph.",
            )
        if self.signature is None and len(self.signatures) > 1:
            self.warnings.append(
                f"{self.name} has {len(self.signatures)} signatures ({', '.join(self.signatures)}); running "
                "the main graph. Pass signature= to choose one."
            )
        self._sig = self._interp.get_signature_runner(self.signature) if self.signature else None
        if self._sig is not None:
            ins = list(self._sig.get_input_details().items())
            outs = list(self._sig.get_output_details().items())
        else:
            ins = [(d["name"], d) for d in self._interp.get_input_details()]
            outs = [(d["name"], d) for d in self._interp.get_output_details()]
        self._in = [self._plan(key, d) for key, d in ins]
        self._out = [self._plan(key, d) for key, d in outs]
        self._input_specs = [p.spec for p in self._in]
        self._output_specs = [p.spec for p in self._out]
        self._subgraph = self._sig._subgraph_index if self._sig is not None else 0
        self._single = self._in[0] if self._sig is None and len(self._in) == 1 else None  # infer's fast path
        self._invoke_fn: Any = None  # set by set_inputs()

    def _plan(self, key: str, detail: dict[str, Any]) -> TensorPlan:
        spec = _spec(detail, key if self._sig is not None else None)
        shape = tuple(int(s) for s in detail["shape"])
        dtype = np.dtype(detail["dtype"])
        index = int(detail["index"])
        copy = self._float_input
        if copy is not None and index in copy.inputs:  # the graph quantizes: report the quantized tensor
            qdtype, scale, zero_point = copy.quantization[copy.inputs.index(index)]
            spec = TensorSpec(spec.name, spec.shape, qdtype, scale, zero_point)
            return TensorPlan(spec, key, shape, dtype, True, index, in_graph=True)
        return TensorPlan(spec, key, shape, dtype, spec.quantized and not self.raw, index)

    # -- Runner -------------------------------------------------------------------------------------------
    def delegate_summary(self) -> list[DelegateUsage]:
        """How many of the main graph's ops each delegate took (XNNPACK included when enabled)."""
        return list(self._usage)

    def accepts_dtype(self, spec: TensorSpec, dtype: np.dtype) -> bool:
        if spec.quantized:  # integers must already be the model's own; floats are quantized for you
            return dtype == np.dtype(spec.dtype) or (not self.raw and dtype.kind == "f")
        return super().accepts_dtype(spec, dtype)

    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        """Run one feed, as :meth:`Runner.infer <liteship.runtime.base.Runner.infer>` does.

        The common case skips :meth:`check_feed`'s general matching (issue 22 (14)): one array for the one
        input of the main graph, of the shape the interpreter is allocated for (so rank and dimensions
        match the spec) and of the model's dtype or float32 to quantize (so :meth:`accepts_dtype` holds).
        """
        p = self._single
        if (
            p is not None
            and type(feed) is np.ndarray
            and feed.shape == p.current
            and (feed.dtype == p.dtype or (p.convert and feed.dtype == np.float32))
            and feed.size
        ):
            return self._infer({p.spec.name: feed})
        return self._infer(self.check_feed(feed))

    __call__ = infer

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._interp is None:
            raise InferenceError(f"the runner for {self.name} is closed.", hint="Create a new LiteRTRunner.")
        for p in self._in:
            if feed[p.spec.name].shape != p.current:
                return self._infer_reshaped(feed)
        try:
            return self._run(feed)
        except _FAILURES as e:
            raise InferenceError(f"LiteRT failed to run {self.name}: {first_line(e)}") from e

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._sig is not None:
            got = self._sig(**{p.key: p.to_model(feed[p.spec.name]) for p in self._in})
            return {p.spec.name: p.from_model(got[p.key]) for p in self._out}
        interp = self._interp
        for p in self._in:
            arr = feed[p.spec.name]
            if p.convert and not p.in_graph and arr.dtype.kind == "f":  # quantized into the input tensor
                view = interp.tensor(p.index)()
                p.quantize_into(arr, view)
                del view  # the interpreter refuses to run while a view of its buffers is alive
            else:
                interp.set_tensor(p.index, p.to_model(arr))
        interp.invoke()
        return {p.spec.name: p.from_model(interp.get_tensor(p.index)) for p in self._out}

    # -- split inference: set the inputs once, then invoke alone (how LiteRT's benchmark tools time) -------
    def set_inputs(self, feed: Feed) -> None:
        """Check and convert ``feed`` (as :meth:`infer` does) and copy it into the model's input tensors.

        Then :meth:`invoke` runs the model on it as often as wanted, and :meth:`get_outputs` reads the
        result. A call to :meth:`infer` in between replaces the inputs: call ``set_inputs`` again.

        Args:
            feed: ``{input_name: array}``, one array, or a list of arrays in input order.

        Raises:
            InferenceError: The feed does not match the model's inputs, or its batch size needs a resize
                the model does not allow (:meth:`infer` runs such a batch one sample at a time).

        Example:
            >>> r.set_inputs(x); r.invoke(); probs = r.get_outputs()["probs"]     # doctest: +SKIP
        """
        checked = self.check_feed(feed)
        if self._interp is None:
            raise InferenceError(f"the runner for {self.name} is closed.", hint="Create a new LiteRTRunner.")
        self._invoke_fn = None  # until these inputs are in
        arrays = [p.to_model(checked[p.spec.name]) for p in self._in]
        try:
            if self._sig is None:
                if any(a.shape != p.current for p, a in zip(self._in, arrays, strict=True)):
                    self._resize({p.spec.name: a.shape for p, a in zip(self._in, arrays, strict=True)})
                for p, a in zip(self._in, arrays, strict=True):
                    self._interp.set_tensor(p.index, a)
                self._invoke_fn = self._interp.invoke
            else:  # what SignatureRunner.__call__ does before its Invoke, on the signature's subgraph
                wrapper = self._interp._interpreter
                for p, a in zip(self._in, arrays, strict=True):
                    wrapper.ResizeInputTensor(p.index, np.array(a.shape, np.int32), False, self._subgraph)
                    p.current = a.shape
                wrapper.AllocateTensors(self._subgraph)
                for p, a in zip(self._in, arrays, strict=True):
                    wrapper.SetTensor(p.index, a, self._subgraph)
                self._invoke_fn = functools.partial(wrapper.Invoke, self._subgraph)
        except _FAILURES as e:
            self._restore()
            shapes = {p.spec.name: list(a.shape) for p, a in zip(self._in, arrays, strict=True)}
            raise InferenceError(
                f"{self.name} does not accept inputs of shapes {shapes}: {first_line(e)}",
                hint=f"Expected inputs: {self._expected()}. infer() runs a batch one sample at a time.",
            ) from e

    def invoke(self) -> None:
        """Run the model once on the inputs of the last :meth:`set_inputs`; nothing is copied.

        Raises:
            InferenceError: No inputs were set since the runner was built (or rebuilt), it is closed, or
                LiteRT failed.
        """
        run = self._invoke_fn
        if run is None:
            raise InferenceError(
                f"no inputs are set on the runner for {self.name} (or it is closed).",
                hint="Call set_inputs(feed) before invoke(), on an open runner.",
            )
        try:
            run()
        except _FAILURES as e:
            raise InferenceError(f"LiteRT failed to run {self.name}: {first_line(e)}") from e

    def get_outputs(self) -> dict[str, np.ndarray]:
        """Copies of the outputs of the last :meth:`invoke`, dequantized unless ``raw``.

        Raises:
            InferenceError: No inputs were set, or the runner is closed.
        """
        if self._invoke_fn is None:
            raise InferenceError(
                f"no inputs are set on the runner for {self.name} (or it is closed).",
                hint="Call set_inputs(feed) and invoke() before get_outputs().",
            )
        get, sub = self._interp.get_tensor, self._subgraph
        return {p.spec.name: p.from_model(get(p.index, sub)) for p in self._out}

    # -- other shapes: resize, or one sample at a time ----------------------------------------------------
    def _infer_reshaped(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batches = {int(a.shape[0]) for a in feed.values()}
        batch = batches.pop() if len(batches) == 1 else None
        if batch is not None and self._loop_batches and self._only_batch_differs(feed):
            return self._infer_per_sample(feed, batch)
        try:
            self._resize({p.spec.name: tuple(feed[p.spec.name].shape) for p in self._in})
            out = self._run(feed)
            self._check_output_batch(out, batch)
            return out
        except _FAILURES as e:
            self._restore()
            if batch is not None and batch > 1 and self._only_batch_differs(feed):
                self._loop_batches = True
                self.warnings.append(
                    f"{self.name} cannot be resized to batch {batch} ({first_line(e)}); running batches "
                    "one sample at a time."
                )
                return self._infer_per_sample(feed, batch)
            shapes = {k: list(v.shape) for k, v in feed.items()}
            raise InferenceError(
                f"{self.name} does not accept input shapes {shapes}: {first_line(e)}",
                hint=f"Expected inputs: {self._expected()}.",
            ) from e

    def _only_batch_differs(self, feed: dict[str, np.ndarray]) -> bool:
        return all(feed[p.spec.name].shape[1:] == p.native[1:] and len(p.native) > 0 for p in self._in)

    def _infer_per_sample(self, feed: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        results = [self._infer({k: v[i : i + 1] for k, v in feed.items()}) for i in range(batch)]
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}

    def _check_output_batch(self, out: dict[str, np.ndarray], batch: int | None) -> None:
        # A static-batch model may resize "successfully" yet fold the batch (e.g. Reshape to [1, -1]).
        for p in self._out:
            native_batch = p.native[0] if p.native else None
            if batch is not None and native_batch == 1 and out[p.spec.name].shape[:1] != (batch,):
                raise RuntimeError(
                    f"output {p.spec.name!r} has shape {list(out[p.spec.name].shape)} for a batch of {batch}"
                )

    def _resize(self, shapes: dict[str, tuple[int, ...]], *, force: bool = False) -> None:
        if self._sig is None:
            for p in self._in:
                if force or shapes[p.spec.name] != p.current:
                    self._interp.resize_tensor_input(p.index, list(shapes[p.spec.name]), strict=False)
            self._interp.allocate_tensors()
        for p in self._in:  # the signature runner resizes by itself on each call
            p.current = shapes[p.spec.name]

    def _restore(self) -> None:
        """Back to the model's own shapes after a failed resize; rebuild if the interpreter stays broken."""
        try:
            self._resize({p.spec.name: p.native for p in self._in}, force=True)
            if self._sig is not None:
                self._run({p.spec.name: np.zeros(p.native, p.dtype) for p in self._in})
        except _FAILURES:
            self._interp = None
            self._build()
            self._setup_io()

    def close(self) -> None:
        self._sig = None
        self._interp = None
        self._invoke_fn = None


def _num_nodes(interp: Any) -> int | None:
    wrapper = getattr(interp, "_interpreter", None)
    if wrapper is None or not hasattr(wrapper, "NumNodes"):
        return None
    return int(wrapper.NumNodes())


__all__ = ["LiteRTRunner", "InterpreterModule", "interpreter_module", "interpreter_class"]
