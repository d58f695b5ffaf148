"""External delegates for the LiteRT interpreter: loading them with clear errors, and counting what each took.

A delegate is a shared library implementing TFLite's external delegate interface
(``tflite_plugin_create_delegate`` / ``tflite_plugin_destroy_delegate``), e.g. the GPU delegate. XNNPACK is
not loaded here: the interpreter applies it itself unless the op resolver says otherwise.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship.errors import DelegateError
from liteship.types import ReportMixin

_ENTRY_POINTS = ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate")


@dataclass(frozen=True)
class DelegateSpec:
    """An external delegate to load: its shared library and string options.

    Attributes:
        path: Path (or library name) of the ``.so``.
        options: Options passed to ``tflite_plugin_create_delegate`` (see the delegate's documentation).
    """

    path: str
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @classmethod
    def coerce(cls, value: DelegateSpec | str | Path | tuple[Any, Mapping[str, Any]]) -> DelegateSpec:
        """Accept a spec, a path, or ``(path, options)``."""
        if isinstance(value, DelegateSpec):
            return value
        if isinstance(value, tuple):
            path, options = value
            return cls(str(path), {str(k): str(v) for k, v in (options or {}).items()})
        return cls(str(value))


@dataclass(frozen=True)
class DelegateUsage(ReportMixin):
    """How much of the model one delegate took.

    Attributes:
        name: ``"XNNPACK"`` (the interpreter's default delegate) or the library's file name.
        nodes: Original graph nodes the delegate replaced (``None`` if the interpreter cannot tell).
        total_nodes: Nodes of the model's main graph.
        partitions: Delegate kernels the replaced nodes became (one per contiguous supported region).
    """

    name: str
    nodes: int | None
    total_nodes: int
    partitions: int

    def describe(self) -> str:
        if self.nodes is None:
            return f"{self.name}: unknown share of {self.total_nodes} ops"
        return f"{self.name}: {self.nodes}/{self.total_nodes} ops in {self.partitions} partition(s)"


def load_delegates(
    specs: Iterable[DelegateSpec], load_delegate: Any, *, fallback: bool, warnings: list[str]
) -> list[tuple[DelegateSpec, Any]]:
    """Load each delegate library. A failure raises DelegateError, or (``fallback``) is noted and skipped.

    Returns:
        ``[(spec, delegate object)]`` for the delegates that loaded.
    """
    loaded = []
    for spec in specs:
        try:
            loaded.append((spec, load_one(spec, load_delegate)))
        except DelegateError as e:
            if not fallback:
                raise
            warnings.append(f"{e.message} Running without it (delegate_fallback=True).")
    return loaded


def library_path(path: str) -> str:
    """``path`` made absolute when it names an existing file, else as given.

    dlopen searches the library path for a name without a slash (``libdelegate.so``) and resolves
    ``lib/x.so`` against the working directory only by accident; a file the user can see must load.
    A bare name that is not a file here (``libedgetpu.so.1``) is left for the dynamic loader to find.
    """
    p = Path(path).expanduser()
    return str(p.resolve()) if p.is_file() else path


def load_one(spec: DelegateSpec, load_delegate: Any) -> Any:
    """Load one delegate library; DelegateError says what failed and what to try."""
    path = library_path(spec.path)
    if Path(spec.path).expanduser().is_dir():
        raise DelegateError(
            f"delegate library {spec.path!r} is a directory; expected a shared library (.so) file.",
            hint="Give the library file itself.",
        )
    try:
        # Checked with ctypes first: load_delegate on a library without the entry points raises
        # AttributeError and then prints a second traceback from Delegate.__del__.
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise DelegateError(
            f"cannot load delegate library {spec.path!r}: {e}.",
            hint="Check the path and that the library was built for this platform and architecture; "
            "or allow a CPU fallback (delegate_fallback=True).",
        ) from e
    missing = [sym for sym in _ENTRY_POINTS if not hasattr(lib, sym)]
    if missing:
        raise DelegateError(
            f"{spec.path!r} is not a TFLite external delegate: it lacks {', '.join(missing)}.",
            hint="Pass a delegate library built with TFLite's external delegate interface "
            "(e.g. libtensorflowlite_gpu_delegate.so).",
        )
    try:
        return load_delegate(path, dict(spec.options))
    except (ValueError, RuntimeError, OSError) as e:
        detail = " ".join(str(e).split()).rstrip(".") or type(e).__name__
        raise DelegateError(
            f"delegate {spec.name} failed to initialise with options {dict(spec.options)}: {detail}.",
            hint="Check the options against the delegate's documentation; "
            "or allow a CPU fallback (delegate_fallback=True).",
        ) from e


def apply_error(specs: list[DelegateSpec], error: BaseException) -> DelegateError:
    """The error for delegates that loaded but could not be applied to the model."""
    names = ", ".join(s.name for s in specs)
    detail = " ".join(str(error).split()).rstrip(".") or type(error).__name__
    return DelegateError(
        f"delegate {names} could not be applied to the model: {detail}.",
        hint="The delegate may not support this model's ops or dtypes (check it with `liteship inspect`); "
        "run on CPU without it, or allow a CPU fallback (delegate_fallback=True).",
    )


def delegated_nodes(wrapper: Any, original: int, start: int, stop: int, *, added: int = 0) -> tuple[int, int]:
    """Count the original nodes replaced by delegate kernel nodes ``start..stop-1``.

    ``added`` nodes at the head of the graph are the runner's own (the QUANTIZE ops of
    :mod:`liteship.model.float_input`): they run, but are not counted as the model's.

    TFLite appends one kernel node per delegated partition after the ``original`` nodes and keeps the
    replaced nodes out of the execution plan. The Python wrapper exposes no plan, so each partition is
    walked back from its outputs to its inputs through the nodes that produce the tensors in between.

    Returns:
        ``(replaced nodes, partitions)``.
    """
    producer: dict[int, int] = {}
    for index in range(original + added):
        for t in wrapper.NodeOutputs(index):
            producer[int(t)] = index
    replaced: set[int] = set()
    for kernel in range(start, stop):
        boundary = {int(t) for t in wrapper.NodeInputs(kernel)}
        stack = [int(t) for t in wrapper.NodeOutputs(kernel)]
        while stack:
            t = stack.pop()
            node = producer.get(t)
            if t in boundary or node is None or node in replaced:
                continue
            replaced.add(node)
            stack.extend(int(i) for i in wrapper.NodeInputs(node) if i >= 0)
    return len([n for n in replaced if n >= added]), stop - start


__all__ = [
    "DelegateSpec",
    "DelegateUsage",
    "load_delegates",
    "load_one",
    "library_path",
    "apply_error",
    "delegated_nodes",
]
