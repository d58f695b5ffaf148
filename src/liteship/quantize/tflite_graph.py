"""The float ``.tflite`` graph the accuracy fixes act on, whatever the source was.

Every source becomes one float ``.tflite`` (TensorFlow/Keras through the converter, PyTorch through
litert-torch, a user's file as it is). :class:`FloatGraph` reads its weighted ops — ``CONV_2D``,
``DEPTHWISE_CONV_2D``, ``FULLY_CONNECTED`` with float32 weights — and lets a fix read and write their
weights and biases as numpy arrays; :func:`all_tensors_interpreter` and :func:`feed` run the float model
in LiteRT on calibration samples so a fix can read the tensors it needs, and :func:`patches` gives an
op's input as its weights see it. BatchNormalization is already folded into the
kernels and activations are fused into the ops by then, so a fix sees exactly what int8 will quantize.

No TensorFlow here: reading, writing and running the graph use the flatbuffer bindings and LiteRT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from liteship._quiet import native_stderr_silenced
from liteship.model import flatbuffer as fbm

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
INT8_MAX = 127  # TFLite's int8 weights are symmetric, narrow range: [-127, 127]


@dataclass(frozen=True)
class WeightedOp:
    """One op whose weights int8 rounds.

    Attributes:
        index: Position in the subgraph's operator list.
        kind: ``CONV_2D``, ``DEPTHWISE_CONV_2D`` or ``FULLY_CONNECTED``.
        name: The op's output tensor name (what a denylist names it by).
        input: Tensor index of the activation input.
        output: Tensor index of the output.
        weight: Tensor index of the weights.
        bias: Tensor index of the bias, or ``None``.
        activation: The fused activation (``NONE``, ``RELU``, ``RELU6``…).
        stride: ``(h, w)``; ``(1, 1)`` for fully connected.
        dilation: ``(h, w)``.
        same_padding: TensorFlow ``SAME`` padding (else ``VALID``).
        multiplier: The depthwise channel multiplier (1 otherwise).
    """

    index: int
    kind: str
    name: str
    input: int
    output: int
    weight: int
    bias: int | None
    activation: str
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    same_padding: bool = False
    multiplier: int = 1

    @property
    def depthwise(self) -> bool:
        return self.kind == "DEPTHWISE_CONV_2D"


class FloatGraph:
    """A float ``.tflite`` model whose weighted ops' weights and biases can be read and rewritten.

    Args:
        data: The model bytes (a normalized float model: op codes readable, one subgraph is used).

    Example:
        >>> g = FloatGraph(open("model.tflite", "rb").read())  # doctest: +SKIP
        >>> w = g.weight(g.ops[0]); g.set_weight(g.ops[0], w * 0.5); new_bytes = g.to_bytes()
    """

    def __init__(self, data: bytes) -> None:
        self._loaded = fbm.load_model(data)
        self._model = self._loaded.model
        self._sg = self._model.subgraphs[0]
        self._files = fbm.associated_files(data)
        self.ops: list[WeightedOp] = [op for op in (self._weighted(i) for i in self._indices()) if op]
        self.skipped: list[tuple[str, str]] = self._unsupported()

    # --- reading -------------------------------------------------------------------------------------
    def _indices(self) -> range:
        return range(len(self._sg.operators or []))

    def op_name(self, index: int) -> str:
        return fbm.op_name(self._model, self._sg.operators[index].opcodeIndex)

    def tensor_name(self, index: int) -> str:
        return fbm.tensor_name(self._sg.tensors[index])

    def shape(self, tensor: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self._sg.tensors[tensor].shape)

    def _float_constant(self, tensor: int) -> bool:
        t = self._sg.tensors[tensor]
        return t.type == fbm.schema.TensorType.FLOAT32 and fbm.has_data(self._model.buffers[t.buffer])

    def _weighted(self, i: int) -> WeightedOp | None:
        kind = self.op_name(i)
        op = self._sg.operators[i]
        if kind not in WEIGHTED or len(op.inputs) < 2 or not self._float_constant(op.inputs[1]):
            return None
        bias = int(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if bias is not None and not self._float_constant(bias):
            return None
        o = op.builtinOptions
        common: dict[str, Any] = {
            "index": i,
            "kind": kind,
            "name": self.tensor_name(op.outputs[0]),
            "input": int(op.inputs[0]),
            "output": int(op.outputs[0]),
            "weight": int(op.inputs[1]),
            "bias": bias,
            "activation": ACTIVATIONS.get(int(getattr(o, "fusedActivationFunction", 0) or 0), "OTHER"),
        }
        if kind == "FULLY_CONNECTED":
            return WeightedOp(**common)
        return WeightedOp(
            **common,
            stride=(int(o.strideH), int(o.strideW)),
            dilation=(int(o.dilationHFactor or 1), int(o.dilationWFactor or 1)),
            same_padding=int(o.padding) == fbm.schema.Padding.SAME,
            multiplier=int(getattr(o, "depthMultiplier", 1) or 1) if kind == "DEPTHWISE_CONV_2D" else 1,
        )

    def _unsupported(self) -> list[tuple[str, str]]:
        found = {op.index for op in self.ops}
        out = []
        for i in self._indices():
            if i not in found and self.op_name(i) in WEIGHTED:
                out.append(
                    (self.tensor_name(self._sg.operators[i].outputs[0]), "weights are not float32 constants")
                )
        return out

    def consumers(self, tensor: int) -> list[int]:
        """Indices of the ops that read ``tensor``."""
        return [i for i in self._indices() if tensor in list(self._sg.operators[i].inputs)]

    def is_model_output(self, tensor: int) -> bool:
        return tensor in list(self._sg.outputs)

    def by_index(self, index: int) -> WeightedOp | None:
        return next((op for op in self.ops if op.index == index), None)

    # --- weights -------------------------------------------------------------------------------------
    def _array(self, tensor: int) -> np.ndarray:
        t = self._sg.tensors[tensor]
        raw = fbm.buffer_bytes(self._model, t.buffer, self._loaded.data)
        return np.frombuffer(raw, dtype=np.float32).reshape(self.shape(tensor)).copy()

    def _store(self, tensor: int, value: np.ndarray) -> None:
        t = self._sg.tensors[tensor]
        value = np.ascontiguousarray(value, dtype=np.float32).reshape(self.shape(tensor))
        buf = self._model.buffers[t.buffer]
        buf.data = np.frombuffer(value.tobytes(), dtype=np.uint8)
        if getattr(buf, "offset", 0) > 1:  # was stored after the flatbuffer: now inline
            buf.offset, buf.size = 0, 0

    def weight(self, op: WeightedOp) -> np.ndarray:
        """The weights as ``[out_channels, fan_in]`` (conv: ``(kh, kw, in)`` order; depthwise: ``(kh, kw)``)."""
        w = self._array(op.weight)
        if op.depthwise:  # [1, kh, kw, C] → [C, kh*kw]
            return w.reshape(-1, w.shape[-1]).T.copy()
        return w.reshape(w.shape[0], -1)

    def set_weight(self, op: WeightedOp, w: np.ndarray) -> None:
        if op.depthwise:
            self._store(op.weight, np.ascontiguousarray(w.T))
        else:
            self._store(op.weight, w)

    def bias(self, op: WeightedOp) -> np.ndarray:
        """The bias per output channel (zeros when the op has none)."""
        if op.bias is None:
            return np.zeros(self.weight(op).shape[0], np.float32)
        return self._array(op.bias).reshape(-1)

    def set_bias(self, op: WeightedOp, b: np.ndarray) -> bool:
        """Write the bias; ``False`` when the op has no bias tensor to write it into."""
        if op.bias is None:
            return False
        self._store(op.bias, b)
        return True

    def to_bytes(self) -> bytes:
        """The model with its current weights (associated files kept)."""
        return fbm.attach_files(fbm.pack_model(self._model, self._loaded.data), self._files)


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(integer grid values, scale per row)`` as TFLite's int8 per-channel quantizer stores ``w``:
    symmetric, ``scale = max|w| / 127`` per output channel (row)."""
    scale = np.abs(w).max(axis=1, keepdims=True) / INT8_MAX
    scale = np.where(scale > 0, scale, 1.0).astype(np.float64)
    q = np.clip(np.round(w / scale), -INT8_MAX, INT8_MAX)
    return q, scale


def rounded(w: np.ndarray) -> np.ndarray:
    """``w`` rounded to its own int8 grid, back in float (what int8 computes with)."""
    q, scale = quantize_weight(w)
    return (q * scale).astype(np.float32)


def all_tensors_interpreter(model: bytes) -> Any:
    """A LiteRT interpreter on ``model`` that keeps every intermediate tensor readable after ``invoke``."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "intended for debugging purposes only"
        interp = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
        interp.allocate_tensors()
    return interp


def feed(interp: Any, sample: Any) -> None:
    """Set a calibration sample (a list of arrays in input order, or ``{input name: array}``)."""
    for k, d in enumerate(interp.get_input_details()):
        if isinstance(sample, dict):
            x = sample[d["name"]] if d["name"] in sample else list(sample.values())[k]
        else:
            x = sample[k] if isinstance(sample, (list, tuple)) else sample
        interp.set_tensor(d["index"], np.asarray(x, dtype=d["dtype"]).reshape(d["shape"]))


def patches(op: WeightedOp, x: np.ndarray, kernel: tuple[int, int], limit: int, seed: int = 0) -> np.ndarray:
    """The op's input rows as its weights see them, at up to ``limit`` random output positions.

    Returns:
        Conv: ``[P, kh*kw*in]``; depthwise: ``[P, kh*kw, C]`` (input channel of each output channel);
        fully connected: ``[P, in]``.
    """
    rng = np.random.default_rng(seed)
    if op.kind == "FULLY_CONNECTED":
        flat = x.reshape(-1, x.shape[-1])
        chosen = rng.choice(len(flat), size=min(limit, len(flat)), replace=False)
        return flat[chosen].astype(np.float64)
    n, h, w, c = x.shape
    kh, kw = kernel
    (sh, sw), (dh, dw) = op.stride, op.dilation
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if op.same_padding:
        oh, ow = -(-h // sh), -(-w // sw)
        ph, pw = max((oh - 1) * sh + eh - h, 0), max((ow - 1) * sw + ew - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - eh) // sh + 1, (w - ew) // sw + 1
    total = n * oh * ow
    pick = rng.choice(total, size=min(limit, total), replace=False)
    b, rem = np.divmod(pick, oh * ow)
    r, col = np.divmod(rem, ow)
    rows: list[np.ndarray] = []
    for i in range(kh):
        for j in range(kw):
            rows.append(x[b, r * sh + i * dh, col * sw + j * dw, :])  # [P, C]
    stacked = np.stack(rows, axis=1).astype(np.float64)  # [P, kh*kw, C]
    if op.depthwise:
        if op.multiplier > 1:
            stacked = np.repeat(stacked, op.multiplier, axis=2)
        return stacked
    return stacked.reshape(len(pick), -1)


def kernel_size(graph: FloatGraph, op: WeightedOp) -> tuple[int, int]:
    shape = graph.shape(op.weight)
    return (1, 1) if op.kind == "FULLY_CONNECTED" else (shape[1], shape[2])


__all__ = [
    "WEIGHTED",
    "FloatGraph",
    "WeightedOp",
    "all_tensors_interpreter",
    "feed",
    "kernel_size",
    "patches",
    "quantize_weight",
    "rounded",
]
