"""What can be converted: SavedModel directories, Keras files, in-memory Keras models, tf.functions —
and, through their own backends, float32 ``.tflite`` files (ai-edge-quantizer, ``convert/tflite_quant.py``)
and PyTorch models (litert-torch, ``convert/torch_source.py``): see :func:`source_kind`.

Each source gives one or more *attempts*: ``(method, make_converter)`` tried in order. A Keras model
first tries ``from_keras_model``; when that breaks (Keras 3: tensorflow#63987, keras#19108) the
converter falls back to ``model.export()`` → ``from_saved_model``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship.convert.torch_model import is_torch_object
from liteship.errors import ConversionError, UsageError
from liteship.model.keras_file import KERAS_FILE_HINT, keras_file_problem

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TORCH_SUFFIXES = (".pt2",)
SOURCE_HINT = (
    "Give a SavedModel directory, a .keras or .h5 file, a float .tflite, a PyTorch .pt2 or module.py:factory "
    "(or, in Python, a keras.Model, tf.function or liteship.convert.TorchModel)."
)
_TORCH_SPEC = re.compile(r"^(?P<file>.+\.py):(?P<factory>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass
class Source:
    """A model ready to hand to the TFLite converter.

    Attributes:
        kind: ``saved_model``, ``keras_file``, ``keras_model`` or ``tf_function`` (the TF converter's
            sources); ``tflite`` and ``torch`` label reports from the other backends.
        label: A readable name for reports (the path, or the model's name).
        obj: The SavedModel path, the Keras model, or the concrete function.
        layer_names: Keras layer names, to name the layer behind an unsupported op.
        trackable: What owns a concrete function's variables (the tf.function), if known.
    """

    kind: str
    label: str
    obj: Any
    layer_names: list[str] = field(default_factory=list)
    trackable: Any = None

    def attempts(self) -> list[tuple[str, Callable[[contextlib.ExitStack], Any]]]:
        """``[(method, make_converter(stack))]`` in the order to try them."""
        import tensorflow as tf

        conv = tf.lite.TFLiteConverter
        if self.kind == "saved_model":
            return [("from_saved_model", lambda _stack: conv.from_saved_model(self.obj))]
        if self.kind == "tf_function":
            return [
                (
                    "from_concrete_functions",
                    lambda _stack: conv.from_concrete_functions([self.obj], self.trackable),
                )
            ]
        return [
            ("from_keras_model", lambda _stack: conv.from_keras_model(self.obj)),
            ("export→from_saved_model", self._via_export),
        ]

    def _via_export(self, stack: contextlib.ExitStack) -> Any:
        import tensorflow as tf

        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="liteship-export-"))
        try:
            with quiet_stdout():
                self.obj.export(tmp, verbose=False)
        except Exception as e:
            raise ConversionError(
                f"cannot export Keras model {self.label!r} to a SavedModel: {first_line(e)}",
                hint="Export it yourself with model.export(dir) and convert the directory.",
            ) from e
        return tf.lite.TFLiteConverter.from_saved_model(tmp)

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{input name: shape}`` with -1 for unknown dimensions (batch included)."""
        if self.kind in ("keras_model", "keras_file"):
            return {
                t.name if hasattr(t, "name") else f"input_{i}": _dims(t.shape)
                for i, t in enumerate(self.obj.inputs)
            }
        if self.kind == "tf_function":
            specs = self.obj.structured_input_signature[0]
            return {s.name or f"input_{i}": _dims(s.shape) for i, s in enumerate(specs)}
        import tensorflow as tf

        loaded = tf.saved_model.load(self.obj)
        sigs = loaded.signatures
        sig = sigs.get("serving_default") or next(iter(sigs.values()), None)
        if sig is None:
            return {}
        return {name: _dims(s.shape) for name, s in sig.structured_input_signature[1].items()}


def _dims(shape: Any) -> tuple[int, ...]:
    return tuple(-1 if d is None else int(d) for d in shape)


def parse_torch_spec(value: str) -> tuple[Path, str] | None:
    """``"models/net.py:build"`` → ``(Path("models/net.py"), "build")``; ``None`` for anything else."""
    match = _TORCH_SPEC.match(value.strip())
    return (Path(match.group("file")), match.group("factory")) if match else None


def source_kind(source: Any) -> str:
    """Which backend converts ``source``: ``"tflite"`` (a .tflite file: ai-edge-quantizer), ``"torch"``
    (a ``TorchModel``, an ``nn.Module``, a ``.pt2`` file or a ``module.py:factory`` spec: litert-torch)
    or ``"tensorflow"`` (everything else: the TFLite converter). Never imports torch or TensorFlow."""
    if isinstance(source, (str, Path)):
        text = str(source)
        if parse_torch_spec(text) is not None or Path(text).suffix.lower() in TORCH_SUFFIXES:
            return "torch"
        return "tflite" if Path(text).suffix.lower() == ".tflite" else "tensorflow"
    return "torch" if is_torch_object(source) else "tensorflow"


def source_file(source: str | Path) -> Path:
    """The file that must exist for a path source (``net.py`` for ``net.py:build``)."""
    spec = parse_torch_spec(str(source))
    return spec[0] if spec else Path(source)


def open_tf_source(source: Any) -> Source:
    """Recognize ``source`` and load what needs loading.

    Raises:
        UsageError: A path that does not exist, or an object that is not a model.
        ConversionError: A directory that is not a SavedModel, or a Keras file that cannot be loaded.
    """
    if isinstance(source, (str, Path)):
        return _from_path(Path(source))
    import tensorflow as tf

    if isinstance(source, tf.types.experimental.ConcreteFunction):
        name = getattr(source, "name", b"tf.function")
        return Source("tf_function", name.decode() if isinstance(name, bytes) else str(name), source)
    if isinstance(source, tf.types.experimental.PolymorphicFunction):
        if getattr(source, "input_signature", None) is None:
            raise UsageError(
                f"tf.function {source.__name__!r} has no input signature, so its input shapes are unknown.",
                hint="Decorate it with @tf.function(input_signature=[tf.TensorSpec(...)]) or pass "
                "fn.get_concrete_function(...).",
                parameter="source",
            )
        return Source("tf_function", source.__name__, source.get_concrete_function(), trackable=source)
    import keras

    if isinstance(source, keras.Model):
        return Source("keras_model", source.name, source, [layer.name for layer in source.layers])
    raise UsageError(f"cannot convert a {type(source).__name__}: `source` must be a model.", hint=SOURCE_HINT)


def _from_path(path: Path) -> Source:
    check_source_path(path)
    if path.is_dir():
        return Source("saved_model", str(path), str(path))
    import keras

    try:
        with quiet_stdout():
            model = keras.models.load_model(path, compile=False)
    except Exception as e:  # keras raises ValueError/OSError/TypeError/zipfile errors on bad files
        raise ConversionError(
            f"cannot load Keras model {str(path)!r}: {first_line(e)}",
            hint="Check that the file is a complete .keras/.h5 save; custom layers must be importable "
            "and registered (keras.saving.register_keras_serializable).",
        ) from e
    return Source("keras_file", str(path), model, [layer.name for layer in model.layers])


def check_source_path(path: Path) -> None:
    """The checks of a TensorFlow/Keras source path that need no TensorFlow (so a wrong path fails in
    a moment, before the seconds TensorFlow takes to import).

    Raises:
        ConversionError: The path is missing, a directory without a SavedModel, or not a Keras file.
    """
    if not path.exists():
        raise ConversionError(f"model {str(path)!r} does not exist.", hint=SOURCE_HINT)
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return
        raise ConversionError(
            f"directory {str(path)!r} is not a SavedModel (it has no saved_model.pb).",
            hint="Export one with model.export(dir) (Keras 3) or tf.saved_model.save(obj, dir).",
        )
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise ConversionError(
            f"cannot convert {str(path)!r}: unknown model file type {path.suffix or '(none)'!r}.",
            hint=SOURCE_HINT,
        )
    problem = keras_file_problem(path)
    if problem:
        raise ConversionError(problem, hint=KERAS_FILE_HINT)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Keep stdout clean while TensorFlow works, so ``--json`` output stays JSON.

    Keras prints "Saved artifact at …" from Python and the MLIR quantizer prints "fully_quantize: …"
    from C++, so both ``sys.stdout`` and file descriptor 1 are redirected: to stderr when
    ``LITESHIP_VERBOSE`` is set, else to /dev/null.
    """
    verbose = bool(os.environ.get("LITESHIP_VERBOSE"))
    saved = None
    try:
        sys.stdout.flush()
        saved = os.dup(1)
        target = os.dup(2) if verbose else os.open(os.devnull, os.O_WRONLY)
        os.dup2(target, 1)
        os.close(target)
    except (OSError, ValueError):  # no real fd 1 (e.g. an embedding host): Python-level only
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr if verbose else io.StringIO()):
            yield
    finally:
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def first_line(e: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(e).strip().split("\n")[0]) if str(e).strip() else type(e).__name__
    return text[:300]


__all__ = [
    "Source",
    "open_tf_source",
    "quiet_stdout",
    "first_line",
    "KERAS_SUFFIXES",
    "TORCH_SUFFIXES",
    "source_kind",
    "source_file",
    "parse_torch_spec",
]
