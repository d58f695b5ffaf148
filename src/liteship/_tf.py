"""Lazy, quiet TensorFlow import for the workstation side (convert, reference runners, layerwise).

TensorFlow's C++ runtime prints to stderr while it loads (oneDNN notices, absl's pre-init warning),
before TF_CPP_MIN_LOG_LEVEL takes effect. Users should see liteship's output, so the import runs
with file descriptor 2 pointed at /dev/null — unless LITESHIP_VERBOSE is set (``liteship -v``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from types import ModuleType

from liteship.errors import UsageError


def tf_installed() -> bool:
    """Whether TensorFlow can be imported, found without importing it (milliseconds, not seconds)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def import_tf() -> ModuleType:
    """Import and return ``tensorflow`` quietly.

    Raises:
        UsageError: TensorFlow is not installed (the device install has no converter).
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    verbose = bool(os.environ.get("LITESHIP_VERBOSE"))
    saved = None
    if not verbose:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            saved = None
    try:
        import tensorflow as tf
    except ImportError as e:
        raise UsageError(
            "this needs TensorFlow, which is not installed (a device install has only the LiteRT runtime).",
            hint="Install the workstation extra: pip install 'liteship[convert]'.",
        ) from e
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
    if not verbose:
        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
    return tf


__all__ = ["import_tf"]
