"""Reference runners: the original Keras model, SavedModel or PyTorch module behind the same Runner
interface (a float .tflite source is its own reference: :class:`~liteship.runtime.litert.LiteRTRunner`).

TensorFlow and torch are imported inside the methods only, so ``liteship.runtime`` imports without them. Outputs are
named as the model names them: Keras output layer names (or the keys of a dict-output model), and the
signature's output keys for a SavedModel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from liteship._tf import import_tf
from liteship.errors import InferenceError, LiteshipError, ModelError
from liteship.model.keras_file import KERAS_FILE_HINT, keras_file_problem
from liteship.runtime.base import FixedSpecsRunner, Runner
from liteship.types import TensorSpec

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
SOURCE_HINT = (
    "Give a .tflite, a .keras/.h5 file, a SavedModel directory, a PyTorch .pt2 or module.py:factory, or (in "
    "Python) a keras.Model or liteship.convert.TorchModel."
)


def _dims(shape: Any) -> tuple[int, ...]:
    return tuple(-1 if d is None else int(d) for d in shape)


def _dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", dtype)  # tf.DType has .name; Keras 3 gives a plain string
    return np.dtype(str(name)).name


def _first_line(e: BaseException) -> str:
    text = str(e).strip().split("\n")[0]
    return (text or type(e).__name__)[:300]


def _layer_name(tensor: Any) -> str:
    """The name of the layer that produces a Keras tensor (what users call the output)."""
    history = getattr(tensor, "_keras_history", None)
    op = getattr(history, "operation", None)
    return str(getattr(op, "name", None) or tensor.name.split("/")[0])


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n] - 1}")
    return out


class KerasRunner(FixedSpecsRunner):
    """Run a Keras model (in memory, or loaded from ``.keras``/``.h5``) as a reference.

    Args:
        model: A ``keras.Model`` or the path of a ``.keras``/``.h5`` file.

    Raises:
        ModelError: The file does not exist or Keras cannot load it.

    Example:
        >>> with KerasRunner("model.keras") as r:            # doctest: +SKIP
        ...     probs = r.infer(x)["probs"]
    """

    backend = "keras"

    def __init__(self, model: Any) -> None:
        import_tf()
        import keras

        if isinstance(model, (str, Path)):
            path = Path(model)
            if not path.is_file():
                raise ModelError(f"Keras model {str(path)!r} does not exist.", hint=SOURCE_HINT)
            problem = keras_file_problem(path)
            if problem:
                raise ModelError(problem, hint=KERAS_FILE_HINT)
            try:
                model = keras.models.load_model(path, compile=False)
            except Exception as e:  # keras raises ValueError/OSError/TypeError on bad files
                raise ModelError(
                    f"cannot load Keras model {str(path)!r}: {_first_line(e)}",
                    hint="Check the file is a complete .keras/.h5 save; custom layers must be registered.",
                ) from e
            self.name = path.name
        elif isinstance(model, keras.Model):
            self.name = model.name
        else:
            raise ModelError(f"KerasRunner needs a keras.Model or a path, not {type(model).__name__}.")
        self.backend = f"keras {keras.__version__}"
        self.model = model
        in_struct = getattr(model, "_inputs_struct", None)
        self._input_keys = sorted(in_struct) if isinstance(in_struct, dict) else None
        in_names = self._input_keys or [t.name for t in model.inputs]
        self._input_specs = [
            TensorSpec(n, _dims(t.shape), _dtype_name(t.dtype))
            for n, t in zip(in_names, model.inputs, strict=True)
        ]
        out_struct = getattr(model, "_outputs_struct", None)
        if isinstance(out_struct, dict):  # Keras flattens dict outputs in sorted key order
            out_names = sorted(out_struct)
        else:
            out_names = _unique([_layer_name(t) for t in model.outputs])
        self._output_specs = [
            TensorSpec(n, _dims(t.shape), _dtype_name(t.dtype))
            for n, t in zip(out_names, model.outputs, strict=True)
        ]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [feed[s.name].astype(s.dtype, copy=False) for s in self._input_specs]
        if self._input_keys is not None:
            x: Any = dict(zip(self._input_keys, arrays, strict=True))
        else:
            x = arrays[0] if len(arrays) == 1 else arrays
        try:
            out = self.model(x, training=False)
        except Exception as e:  # TF/Keras raise many types for bad inputs
            raise InferenceError(f"Keras failed to run {self.name}: {_first_line(e)}") from e
        if isinstance(out, dict):
            values = [out[s.name] for s in self._output_specs]
        else:
            values = list(out) if isinstance(out, (list, tuple)) else [out]
        return {s.name: np.asarray(v) for s, v in zip(self._output_specs, values, strict=True)}

    def close(self) -> None:
        pass  # the model may belong to the caller; nothing to release


class SavedModelRunner(FixedSpecsRunner):
    """Run one signature of a TensorFlow SavedModel as a reference.

    Args:
        path: The SavedModel directory (with ``saved_model.pb``).
        signature: The signature key. Defaults to ``"serving_default"``.

    Raises:
        ModelError: The directory is not a SavedModel, or it has no such signature.
    """

    def __init__(self, path: str | Path, signature: str = "serving_default") -> None:
        tf = import_tf()
        path = Path(path)
        if not (path / "saved_model.pb").exists() and not (path / "saved_model.pbtxt").exists():
            raise ModelError(
                f"{str(path)!r} is not a SavedModel directory (no saved_model.pb).", hint=SOURCE_HINT
            )
        try:
            self._loaded = tf.saved_model.load(str(path))
        except Exception as e:
            raise ModelError(f"cannot load SavedModel {str(path)!r}: {_first_line(e)}") from e
        sigs = self._loaded.signatures
        if signature not in sigs:
            raise ModelError(
                f"SavedModel {str(path)!r} has no signature {signature!r}; it has {sorted(sigs) or 'none'}.",
                hint="Pass one of those as signature=.",
            )
        self.name = path.name
        self.backend = f"tensorflow {tf.__version__} (SavedModel)"
        self.signature = signature
        self._fn = sigs[signature]
        ins = self._fn.structured_input_signature[1]
        self._input_specs = [TensorSpec(n, _dims(s.shape), _dtype_name(s.dtype)) for n, s in ins.items()]
        outs = self._fn.structured_outputs
        self._output_specs = [TensorSpec(n, _dims(s.shape), _dtype_name(s.dtype)) for n, s in outs.items()]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        args = {s.name: tf.constant(feed[s.name].astype(s.dtype, copy=False)) for s in self._input_specs}
        try:
            out = self._fn(**args)
        except Exception as e:
            raise InferenceError(f"TensorFlow failed to run {self.name}: {_first_line(e)}") from e
        return {s.name: out[s.name].numpy() for s in self._output_specs}

    def close(self) -> None:
        self._fn = None
        self._loaded = None


class TorchRunner(FixedSpecsRunner):
    """Run the original PyTorch module as a reference, in the converted model's layout.

    The .tflite that litert-torch makes takes NHWC for 4-D inputs (see ``liteship.convert.torch_source``),
    so this runner takes NHWC too and transposes to the module's NCHW; outputs are the module's, named
    ``output_0``, ``output_1``… (validate pairs them with the .tflite's outputs in order).

    Args:
        model: A ``TorchModel``, an ``nn.Module`` (with ``input_shape``), a ``.pt2`` file or a
            ``module.py:factory`` spec.
        input_shape: The module's input shape (NCHW) when the source carries no sample inputs.

    Raises:
        ModelError: torch is not installed, or the source cannot be loaded.
    """

    def __init__(self, model: Any, input_shape: Any = None) -> None:
        from liteship.convert.torch_source import load_torch_source

        try:
            self._model = load_torch_source(model, input_shape)
        except LiteshipError as e:
            raise ModelError(e.message, hint=e.hint) from e
        import torch

        self._torch = torch
        self.name = self._model.name
        self.backend = f"torch {torch.__version__}"
        nhwc = set(self._model.nhwc_indices())
        self._nhwc = nhwc
        shapes = self._model.tflite_shapes()
        self._input_specs = [
            TensorSpec(n, s, str(x.dtype).replace("torch.", ""))
            for n, s, x in zip(shapes, shapes.values(), self._model.sample_inputs, strict=True)
        ]
        with torch.no_grad():
            out = self._call(self._model.sample_inputs)
        self._output_specs = [
            TensorSpec(f"output_{i}", tuple(int(d) for d in o.shape), str(o.dtype).replace("torch.", ""))
            for i, o in enumerate(out)
        ]

    def _call(self, args: tuple[Any, ...]) -> list[Any]:
        out = self._model.module(*args)
        if isinstance(out, dict):
            out = list(out.values())
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = []
        for i, s in enumerate(self._input_specs):
            a = np.asarray(feed[s.name], dtype=s.dtype)
            args.append(
                torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1) if i in self._nhwc else a))
            )
        batch = int(args[0].shape[0]) if args and args[0].ndim else 1
        want = self._input_specs[0].shape[0] if self._input_specs and self._input_specs[0].shape else -1
        # an exported (.pt2) module is fixed to its example's batch: run a different batch sample by sample
        chunks = (
            [tuple(a[i : i + 1] for a in args) for i in range(batch)]
            if want not in (-1, batch)
            else [tuple(args)]
        )
        try:
            with torch.no_grad():
                outs = [self._call(c) for c in chunks]
        except Exception as e:  # the module's own code can raise anything
            raise InferenceError(f"PyTorch failed to run {self.name}: {_first_line(e)}") from e
        return {
            s.name: np.concatenate([o[k].detach().cpu().numpy() for o in outs])
            for k, s in enumerate(self._output_specs)
        }

    def close(self) -> None:
        pass  # the module may belong to the caller


def reference_runner_for(source: Any, input_shape: Any = None) -> Runner:
    """The reference runner for a conversion ``source`` (what the pipeline validates against): a float
    .tflite → LiteRT, a PyTorch source → :class:`TorchRunner`, Keras/SavedModel → their runners.

    Raises:
        ModelError: ``source`` does not exist or is not a model liteship can run.
    """
    from liteship.convert.sources import source_kind

    if source_kind(source) == "torch":
        return TorchRunner(source, input_shape)
    return open_reference(source)


def open_reference(source: Any) -> Runner:
    """The runner for ``source``: a Runner (returned as is), ``.tflite`` (LiteRT), ``.keras``/``.h5``
    or ``keras.Model`` (Keras), or a SavedModel directory.

    Raises:
        ModelError: ``source`` does not exist or is not a model liteship can run.
    """
    if isinstance(source, Runner):
        return source
    if isinstance(source, (bytes, bytearray)):
        from liteship.runtime.litert import LiteRTRunner

        return LiteRTRunner(bytes(source))
    from liteship.convert.sources import source_kind

    if source_kind(source) == "torch":
        return TorchRunner(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ModelError(f"model {str(path)!r} does not exist.", hint=SOURCE_HINT)
        if path.is_dir():
            return SavedModelRunner(path)
        suffix = path.suffix.lower()
        if suffix == ".tflite":
            from liteship.runtime.litert import LiteRTRunner

            return LiteRTRunner(path)
        if suffix in KERAS_SUFFIXES:
            return KerasRunner(path)
        raise ModelError(
            f"cannot run {str(path)!r}: unknown model type {suffix or '(none)'!r}.", hint=SOURCE_HINT
        )
    if type(source).__module__.startswith(("keras", "tf_keras")) or hasattr(source, "layers"):
        return KerasRunner(source)
    raise ModelError(f"cannot run a {type(source).__name__}.", hint=SOURCE_HINT)


__all__ = ["KerasRunner", "SavedModelRunner", "TorchRunner", "open_reference", "reference_runner_for"]
