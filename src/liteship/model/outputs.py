"""What a model's output holds, read from the graph (no TensorFlow): probabilities or logits.

The confidence rule (:mod:`liteship.confidence`) needs to know whether a classifier output is already
a probability (softmax / sigmoid) or a logit. Guessing from the values fails for logits that happen to
lie in [0, 1], so the producing op decides, once per model: the output's producer, followed back
through ops that keep the values (DEQUANTIZE, QUANTIZE, RESHAPE, SQUEEZE, EXPAND_DIMS, CAST), is
SOFTMAX or LOGISTIC → probabilities; any other op → logits. The validate stage, the package's
reference histogram and the device agent all ask this one function.

Example:
    >>> from liteship.model.outputs import score_kind
    >>> score_kind("tests/data/third_party/mobilenet_v1_0.25_224_quant.tflite")  # doctest: +SKIP
    'probabilities'
"""

from __future__ import annotations

import os
from typing import Any

from liteship.confidence import LOGITS, PROBABILITIES, ScoreKind
from liteship.model.flatbuffer import LoadedModel, load_model, op_name

PROBABILITY_OPS = frozenset({"SOFTMAX", "LOGISTIC"})
# Ops that move or re-encode values without changing what they mean (a softmax stays a softmax).
VALUE_PRESERVING_OPS = frozenset({"DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CAST"})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _output_tensor(model: Any, output: str | int) -> tuple[Any, int] | None:
    """``(subgraph, tensor index)`` of an output named by index, tensor name or signature output name."""
    main = model.subgraphs[0]
    outputs = [int(t) for t in (main.outputs if main.outputs is not None else [])]
    if isinstance(output, int):
        return (main, outputs[output]) if 0 <= output < len(outputs) else None
    for t in outputs:
        if _text(main.tensors[t].name) == output:
            return main, t
    for sig in model.signatureDefs or []:
        for m in sig.outputs or []:
            if _text(m.name) == output:
                return model.subgraphs[sig.subgraphIndex], int(m.tensorIndex)
    return None


def producer_op(model: LoadedModel | bytes | str | os.PathLike, output: str | int = 0) -> str | None:
    """The op that gives ``output`` its meaning: its producer, followed back through value-preserving ops.

    Args:
        model: A verified :class:`~liteship.model.flatbuffer.LoadedModel`, or a ``.tflite`` path/bytes.
        output: The output's index in the main graph, its tensor name, or a signature output name.
            Defaults to the first output.

    Returns:
        The op name (``"SOFTMAX"``, ``"FULLY_CONNECTED"``, …), or None when the output is not found or
        no op produces it (it is a graph input or a constant).

    Raises:
        ModelError: ``model`` is not a readable ``.tflite``.
    """
    if isinstance(model, LoadedModel):
        loaded = model
    else:
        loaded = load_model(model if isinstance(model, bytes) else os.fspath(model))
    found = _output_tensor(loaded.model, output)
    if found is None:
        return None
    sg, tensor = found
    producers = {
        int(o): op for op in sg.operators or [] for o in (op.outputs if op.outputs is not None else [])
    }
    seen: set[int] = set()
    while tensor in producers and tensor not in seen:
        seen.add(tensor)
        op = producers[tensor]
        name = op_name(loaded.model, op.opcodeIndex)
        inputs = [int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        if name not in VALUE_PRESERVING_OPS or not inputs:
            return name
        tensor = inputs[0]
    return None


def score_kind(model: LoadedModel | bytes | str | os.PathLike, output: str | int = 0) -> ScoreKind | None:
    """Whether ``output`` holds probabilities or logits, from the op that produces it.

    Args:
        model: A verified :class:`~liteship.model.flatbuffer.LoadedModel`, or a ``.tflite`` path/bytes.
        output: As in :func:`producer_op`. Defaults to the first output.

    Returns:
        ``"probabilities"`` (SOFTMAX or LOGISTIC), ``"logits"`` (any other op), or None when the graph
        cannot say (see :func:`producer_op`); callers then fall back to the per-row rule of
        :func:`liteship.confidence.top1_confidence`.

    Raises:
        ModelError: ``model`` is not a readable ``.tflite``.
    """
    op = producer_op(model, output)
    if op is None:
        return None
    return PROBABILITIES if op in PROBABILITY_OPS else LOGITS


__all__ = ["producer_op", "score_kind", "PROBABILITY_OPS", "VALUE_PRESERVING_OPS"]
