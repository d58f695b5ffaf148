"""Which ops does an accelerator reject? Found by compiling pieces of the model, when LiteRT does not say.

LiteRT's GPU accelerator names the ops it rejects in its native log (and only once per process); an
NPU's compiler plugin, or a future GPU message, may not. :func:`blame_ops` then finds them itself: it
cuts the model's main subgraph into contiguous op ranges (sub-models made with the flatbuffer schema
bindings: the range's outside inputs become the sub-model's inputs, the tensors it hands on become its
outputs), compiles each with that accelerator *alone*, and bisects every range that fails down to the
single ops that fail on their own. It needs only the answer "did it compile", never the log.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from liteship.model.flatbuffer import LoadedModel, has_data, load_model, op_name, pack_model
from liteship.types import ReportMixin

MAX_COMPILES = 512  # a model of 1,000 ops with a handful of culprits needs ~100


@dataclass(frozen=True)
class BlamedOp(ReportMixin):
    """An op that the accelerator rejects when compiled on its own.

    Attributes:
        index: Its position in the main subgraph's operator list.
        op: Its type (``SQUEEZE``, or the custom code).
        reason: What LiteRT answered to the op alone.
    """

    index: int
    op: str
    reason: str


def op_range_model(loaded: LoadedModel, start: int, stop: int) -> bytes:
    """A model of the main subgraph's ops ``[start, stop)``.

    Its inputs are the non-constant tensors the range reads but does not produce; its outputs are the
    tensors it produces that later ops or the model's outputs read (else its last op's outputs).
    Signatures are dropped (they name the whole model's inputs); other subgraphs and buffers are kept, so
    control-flow ops still find their bodies.
    """
    model = copy.deepcopy(loaded.model)
    sg = model.subgraphs[0]
    ops = list(sg.operators or [])
    inside = ops[start:stop]
    const = {i for i, b in enumerate(model.buffers or []) if has_data(b)}
    produced = {t for op in inside for t in _ints(op.outputs)}
    later = {t for op in ops[stop:] for t in _ints(op.inputs)} | set(_ints(sg.outputs))
    inputs: list[int] = []
    for op in inside:
        for t in _ints(op.inputs):
            if t >= 0 and t not in produced and sg.tensors[t].buffer not in const and t not in inputs:
                inputs.append(t)
    outputs = [t for op in inside for t in _ints(op.outputs) if t in later] or _ints(inside[-1].outputs)
    sg.operators = inside
    sg.inputs = inputs
    sg.outputs = list(dict.fromkeys(outputs))
    model.signatureDefs = []
    return pack_model(model, loaded.data)


def op_type(loaded: LoadedModel, index: int) -> str:
    """The type name of op ``index`` of the main subgraph."""
    return op_name(loaded.model, loaded.model.subgraphs[0].operators[index].opcodeIndex)


def blame_ops(
    model: str | bytes | LoadedModel,
    compile_error: Callable[[bytes], str | None],
    *,
    max_compiles: int = MAX_COMPILES,
) -> tuple[BlamedOp, ...]:
    """The ops that fail to compile on their own, found by bisection over contiguous op ranges.

    Args:
        model: The .tflite (path, bytes or loaded).
        compile_error: Compiles a sub-model with the accelerator alone; returns why it was rejected, or
            ``None`` when it compiled (see :meth:`CompiledModelRunner.rejection`).
        max_compiles: Stop after this many compilations (what was found so far is returned).

    Returns:
        The blamed ops in model order; empty when every range compiles (the failure needs the ops
        together) or the model has no ops.
    """
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    n = len(loaded.model.subgraphs[0].operators or []) if loaded.model.subgraphs else 0
    found: list[BlamedOp] = []
    budget = [max_compiles]

    def fails(lo: int, hi: int) -> str | None:
        budget[0] -= 1
        return compile_error(op_range_model(loaded, lo, hi))

    ranges: list[tuple[int, int]] = [(0, n)] if n else []
    while ranges and budget[0] > 0:
        lo, hi = ranges.pop()
        why = fails(lo, hi)
        if why is None:
            continue
        if hi - lo == 1:
            found.append(BlamedOp(lo, op_type(loaded, lo), why))
            continue
        mid = (lo + hi) // 2
        ranges += [(mid, hi), (lo, mid)]  # the first half is popped first: model order
    return tuple(sorted(found, key=lambda b: b.index))


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values] if values is not None else []


def describe(blamed: Sequence[BlamedOp]) -> str:
    """``SQUEEZE (op #29)``, for messages."""
    return ", ".join(f"{b.op} (op #{b.index})" for b in blamed)


__all__ = ["BlamedOp", "blame_ops", "describe", "op_range_model", "op_type"]
