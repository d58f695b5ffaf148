"""Whether a ``.keras``/``.h5`` file can be a Keras save at all, read without Keras: the reference runner
(``runtime/reference.py``) and the TensorFlow frontend (``convert/sources.py``) both check it first,
because Keras reports a corrupt file as "File not found"."""

from __future__ import annotations

import zipfile
from pathlib import Path

KERAS_FILE_HINT = "Check that the file was copied completely, or re-save the model."
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def keras_file_problem(path: Path) -> str | None:
    """Why ``path`` (an existing ``.keras``/``.h5`` file) cannot be a Keras save, or None: a ``.keras``
    file is a zip archive, a ``.h5`` file starts with the HDF5 signature. Keras itself reports a corrupt
    file as "File not found"."""
    suffix = path.suffix.lower()
    if suffix == ".keras" and not zipfile.is_zipfile(path):
        return f"{str(path)!r} is not a .keras archive (a .keras file is a zip written by model.save())."
    if suffix == ".h5":
        with path.open("rb") as f:
            if f.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
                return f"{str(path)!r} is not an HDF5 file (a .h5 Keras save starts with the HDF5 signature)."
    return None


__all__ = ["KERAS_FILE_HINT", "keras_file_problem"]
