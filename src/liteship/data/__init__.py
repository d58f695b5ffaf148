"""Datasets for calibration and validation: one iterator of ``(x, label | None)``.

Sources:
    * a folder of images, flat or with one sub-folder per class (sorted names → class indices);
    * a ``.npy`` file: an array ``(N, ...)`` of model-ready samples;
    * a ``.npz`` file with ``x`` and optional ``y`` (class indices or one-hot);
    * a Python callable (API only) returning an iterable of arrays, ``(x, y)`` tuples or
      ``{input_name: array}`` dicts.

Samples come without the batch dimension. Preprocessing (``liteship.types.Preprocessing``) is applied
here, once, so every stage sees the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liteship.errors import DataError
from liteship.types import Preprocessing

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm")

Sample = tuple[Any, "int | None"]


class Dataset:
    """A sized, re-iterable sequence of ``(x, label)`` samples.

    Attributes:
        source: Where the samples came from (for reports).
        class_names: Class names from an image folder's sub-folders, else ``None``.
        has_labels: Whether every sample has a label.
    """

    def __init__(
        self,
        load: Callable[[int], Sample],
        count: int,
        *,
        source: str,
        class_names: list[str] | None = None,
        has_labels: bool = False,
    ) -> None:
        self._load = load
        self._count = count
        self.source = source
        self.class_names = class_names
        self.has_labels = has_labels

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> Sample:
        if not 0 <= i < self._count:
            raise IndexError(i)
        return self._load(i)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(self._count):
            yield self._load(i)

    def take(self, n: int | None) -> Dataset:
        """The first ``n`` samples (all when ``n`` is ``None`` or larger than the dataset)."""
        if n is None or n >= self._count:
            return self
        if n < 1:
            raise DataError(f"sample limit must be at least 1, got {n}.")
        return Dataset(
            self._load, n, source=self.source, class_names=self.class_names, has_labels=self.has_labels
        )

    def materialize(self) -> Dataset:
        """Load every sample once and keep it in memory (for a dataset read by several stages)."""
        samples = list(self)
        return Dataset(
            samples.__getitem__,
            len(samples),
            source=self.source,
            class_names=self.class_names,
            has_labels=self.has_labels,
        )

    def inputs(self) -> list[Any]:
        return [x for x, _ in self]

    def labels(self) -> list[int | None]:
        return [y for _, y in self]


NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def load_numpy(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    """A ``.npy`` array, or a ``.npz`` archive's arrays as a dict (read in full), told apart by content.

    Never unpickles: a file of Python objects is refused.

    Raises:
        DataError: The file is missing, empty, not a numpy file, truncated, or holds Python objects.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(len(NPY_MAGIC))
    except OSError as e:
        raise DataError(f"cannot read {str(path)!r}: {e.strerror or e}.", hint="Check the path.") from e
    if not head:
        raise DataError(f"{str(path)!r} is empty (0 bytes).", hint=_NUMPY_HINT)
    if not head.startswith(NPY_MAGIC) and not head.startswith(ZIP_MAGIC):
        raise DataError(
            f"{str(path)!r} is not a numpy file: it starts with neither the .npy header nor a .npz (zip) "
            "signature.",
            hint=_NUMPY_HINT,
        )
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            return data
        with data:
            return dict(data.items())
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(
                f"{str(path)!r} holds Python objects (pickled), which liteship does not load.",
                hint=_NUMPY_HINT,
            ) from e
        raise DataError(f"cannot read {str(path)!r} as a numpy file: {e}", hint=_NUMPY_HINT) from e
    except Exception as e:  # truncated or corrupted: OSError, EOFError, zipfile.BadZipFile, …
        raise DataError(
            f"cannot read {str(path)!r}: it is truncated or corrupted ({type(e).__name__}: {e}).",
            hint=_NUMPY_HINT,
        ) from e


_NUMPY_HINT = "Save numeric arrays with np.save(path, x) or np.savez(path, x=inputs, y=labels)."


def check_dataset_path(path: str | Path) -> None:
    """Raise the :func:`load_dataset` error for a dataset path that does not exist (cheap: callers run it
    before slow set-up, e.g. TensorFlow's import)."""
    if not Path(path).exists():
        raise DataError(
            f"dataset {str(path)!r} does not exist.",
            hint="Give a folder of images (one sub-folder per class), a .npy or a .npz file.",
        )


def raw_range(source: Any) -> tuple[str, float, float] | None:
    """How a dataset's raw values look before any preprocessing: ``(kind, min, max)``.

    Images are read as pixels 0–255 (``liteship.model.preprocessing.PIXELS``); arrays give their dtype and
    value range. ``None`` for what cannot be looked at without running it (a callable, a Dataset).
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
            return "raw pixels 0–255", 0.0, 255.0
        if path.suffix.lower() not in (".npy", ".npz") or not path.is_file():
            return None
        loaded = load_numpy(path)
        source = loaded.get("x") if isinstance(loaded, dict) else loaded
    if not isinstance(source, np.ndarray) or source.size == 0 or not np.issubdtype(source.dtype, np.number):
        return None
    finite = source[np.isfinite(source)] if np.issubdtype(source.dtype, np.inexact) else source
    if finite.size == 0:
        return None
    return f"{source.dtype} array", float(finite.min()), float(finite.max())


def load_dataset(
    source: str | Path | Callable[[], Iterable[Any]] | np.ndarray | Dataset,
    *,
    preprocessing: Preprocessing | None = None,
    input_shape: Sequence[int] | None = None,
    limit: int | None = None,
) -> Dataset:
    """Open a dataset for calibration or validation.

    Args:
        source: Image folder, ``.npy``/``.npz`` path, array, callable, or an existing Dataset.
        preprocessing: Applied to every sample. Defaults to identity (images stay 0..255).
        input_shape: The model's input shape ``(1, H, W, C)``; images are resized to it unless
            ``preprocessing.size`` says otherwise, and converted to grayscale when ``C == 1``.
        limit: Keep only the first ``limit`` samples. Defaults to all.

    Returns:
        A :class:`Dataset`.

    Raises:
        DataError: The path is missing, empty, or holds nothing usable.
    """
    pre = preprocessing or Preprocessing()
    if isinstance(source, Dataset):
        return source.take(limit)
    if isinstance(source, np.ndarray):
        arr = source
        check_layout(arr, input_shape, "array")
        return _from_arrays(arr, None, pre, "array").take(limit)
    if callable(source):
        return _from_callable(source, pre).take(limit)
    path = Path(source)
    check_dataset_path(path)
    if path.is_dir():
        return _from_image_folder(path, pre, input_shape).take(limit)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = load_numpy(path)
        if isinstance(array, dict):
            raise DataError(f"{str(path)!r} is a .npz archive named .npy.", hint="Rename it to .npz.")
        check_layout(array, input_shape, str(path))
        return _from_arrays(array, None, pre, str(path)).take(limit)
    if suffix == ".npz":
        files = load_numpy(path)
        if not isinstance(files, dict):
            raise DataError(f"{str(path)!r} is a .npy array named .npz.", hint="Rename it to .npy.")
        if "x" not in files:
            raise DataError(
                f"{str(path)!r} has arrays {sorted(files)}; expected one named 'x' "
                "(and optionally 'y' with labels).",
                hint="Save it with np.savez(path, x=inputs, y=labels).",
            )
        check_layout(files["x"], input_shape, str(path))
        return _from_arrays(files["x"], files.get("y"), pre, str(path)).take(limit)
    if suffix in IMAGE_SUFFIXES:
        return _from_image_files([path], None, pre, input_shape, str(path))
    raise DataError(
        f"cannot use {str(path)!r} as a dataset: unknown file type {suffix!r}.",
        hint="Give a folder of images, a .npy or a .npz file.",
    )


def check_layout(x: np.ndarray, input_shape: Sequence[int] | None, source: str) -> None:
    """Refuse channels-first (NCHW) images for a channels-last (NHWC) model, at once and by name.

    Raises:
        DataError: ``x`` is ``(N, C, H, W)`` and the model takes ``(1, H, W, C)``.
    """
    if input_shape is None or len(input_shape) != 4 or x.ndim != 4:
        return
    if any(not isinstance(d, (int, np.integer)) or d < 1 for d in input_shape[1:]):
        return  # a dynamic size: nothing to compare
    h, w, c = (int(d) for d in input_shape[1:])
    if c not in (1, 3, 4) or tuple(x.shape[1:]) != (c, h, w) or (c, h, w) == (h, w, c):
        return
    raise DataError(
        f"dataset {source!r} holds channels-first (NCHW) images {list(x.shape)}, and the model takes "
        f"channels-last (NHWC) input [1, {h}, {w}, {c}].",
        hint="Transpose it: x = np.transpose(x, (0, 2, 3, 1)) (PyTorch data is NCHW; TFLite takes NHWC).",
    )


def _from_arrays(x: np.ndarray, y: np.ndarray | None, pre: Preprocessing, source: str) -> Dataset:
    if x.ndim < 1 or len(x) == 0:
        raise DataError(f"dataset {source!r} is empty (shape {x.shape}); expected an array (N, ...).")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"dataset {source!r} has dtype {x.dtype}; expected numbers.")
    if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.all(np.isfinite(x.reshape(len(x), -1)), axis=1))
        raise DataError(
            f"dataset {source!r} has NaN or Inf in {len(bad)} of {len(x)} samples (first: sample "
            f"{int(bad[0])}); a model's outputs on them mean nothing.",
            hint="Fix or drop those samples.",
        )
    labels: np.ndarray | None = None
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2:  # one-hot
            y = y.argmax(axis=1)
        if len(y) != len(x):
            raise DataError(
                f"dataset {source!r} has {len(x)} inputs but {len(y)} labels; expected one label per input."
            )
        labels = y.astype(np.int64)
    xf = pre.normalize(x) if not pre.is_identity else x

    def load(i: int) -> Sample:
        return xf[i], (int(labels[i]) if labels is not None else None)

    return Dataset(load, len(x), source=source, has_labels=labels is not None)


def _from_callable(fn: Callable[[], Iterable[Any]], pre: Preprocessing) -> Dataset:
    try:
        items = list(fn())
    except Exception as e:
        raise DataError(f"the dataset callable {getattr(fn, '__name__', fn)!r} raised {e!r}.") from e
    if not items:
        raise DataError("the dataset callable yielded no samples; expected at least one.")
    samples: list[Sample] = []
    for it in items:
        x, y = it if isinstance(it, tuple) and len(it) == 2 else (it, None)
        if isinstance(x, dict):
            x = {k: pre.normalize(np.asarray(v)) for k, v in x.items()}
        elif isinstance(x, list) and len(x) == 1:
            x = pre.normalize(np.asarray(x[0]))
        else:
            x = pre.normalize(np.asarray(x))
        samples.append((x, None if y is None else int(y)))
    name = getattr(fn, "__name__", "callable")
    return Dataset(
        samples.__getitem__,
        len(samples),
        source=f"callable:{name}",
        has_labels=all(y is not None for _, y in samples),
    )


def _from_image_folder(path: Path, pre: Preprocessing, input_shape: Sequence[int] | None) -> Dataset:
    subdirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if subdirs:
        files: list[Path] = []
        labels: list[int] = []
        for idx, d in enumerate(subdirs):
            imgs = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            files += imgs
            labels += [idx] * len(imgs)
        if files:
            return _from_image_files(
                files, labels, pre, input_shape, str(path), class_names=[d.name for d in subdirs]
            )
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(
            f"folder {str(path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).",
            hint="Put images in it, or in one sub-folder per class.",
        )
    return _from_image_files(files, None, pre, input_shape, str(path))


def _from_image_files(
    files: list[Path],
    labels: list[int] | None,
    pre: Preprocessing,
    input_shape: Sequence[int] | None,
    source: str,
    class_names: list[str] | None = None,
) -> Dataset:
    def load(i: int) -> Sample:
        x = load_image(files[i], pre, input_shape)
        return x, (labels[i] if labels is not None else None)

    return Dataset(load, len(files), source=source, class_names=class_names, has_labels=labels is not None)


def load_image(
    path: str | Path, pre: Preprocessing | None = None, input_shape: Sequence[int] | None = None
) -> np.ndarray:
    """Read one image as float32 ``(H, W, C)``: resized, channel-ordered and normalized.

    Args:
        path: Image file.
        pre: Preprocessing. Defaults to identity (pixel values 0..255).
        input_shape: Model input shape ``(1, H, W, C)`` giving the size and channel count.

    Raises:
        DataError: The file cannot be decoded as an image.
    """
    from PIL import Image, UnidentifiedImageError  # Pillow is a core dependency, imported when used

    try:
        with Image.open(path) as opened:
            return prepare_image(opened, pre, input_shape)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(
            f"cannot decode image {str(path)!r}: {e}.",
            hint="Use JPEG/PNG/BMP files, or remove the file from the folder.",
        ) from e


def prepare_image(
    image: Any, pre: Preprocessing | None = None, input_shape: Sequence[int] | None = None
) -> np.ndarray:
    """The one image preparation of liteship (validation, calibration, ``run`` and the device agent):
    a PIL image or ``(H, W[, C])`` uint8 pixels → float32 ``(H, W, C)``, resized, channel-ordered and
    normalized.

    Args:
        image: A PIL image, or pixels (RGB or grayscale, as a camera source gives them).
        pre: Preprocessing. Defaults to identity (pixel values 0..255).
        input_shape: Model input shape ``(1, H, W, C)`` giving the size and channel count.
    """
    from PIL import Image

    pre = pre or Preprocessing()
    im: Image.Image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    channels = int(input_shape[-1]) if input_shape is not None and len(input_shape) == 4 else 3
    gray = pre.grayscale if pre.grayscale is not None else channels == 1
    im = im.convert("L" if gray else "RGB")
    size = pre.size or (
        tuple(int(s) for s in input_shape[1:3])
        if input_shape is not None and len(input_shape) == 4 and min(input_shape[1:3]) > 0
        else None
    )
    if size is not None and (im.height, im.width) != tuple(size):
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    if pre.channel_order == "bgr" and arr.shape[-1] == 3:
        arr = arr[..., ::-1]
    return pre.normalize(arr)


def parse_labels(raw: bytes | str) -> list[str]:
    """The one label-file rule: one label per line (UTF-8, a BOM and ``\\r\\n`` endings allowed), the
    final line break ignored, blank lines inside kept (class indices stay aligned); empty text → ``[]``."""
    text = raw.decode("utf-8-sig", errors="replace") if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
    if not text.strip():
        return []
    return [line.rstrip("\r") for line in text.rstrip("\r\n").split("\n")]


def read_labels(path: str | Path) -> list[str]:
    """:func:`parse_labels` of a file.

    Raises:
        DataError: The file cannot be read.
    """
    try:
        return parse_labels(Path(path).read_bytes())
    except OSError as e:
        raise DataError(
            f"cannot read labels file {str(path)!r}: {e.strerror or e}.",
            hint="Give a text file with one label per line.",
        ) from e


__all__ = [
    "Dataset",
    "load_dataset",
    "check_dataset_path",
    "load_numpy",
    "load_image",
    "prepare_image",
    "parse_labels",
    "read_labels",
    "IMAGE_SUFFIXES",
]
