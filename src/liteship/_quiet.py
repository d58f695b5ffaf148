"""Silence what native code (TensorFlow, LiteRT) prints straight to file descriptor 2.

LiteRT announces "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every interpreter, and the
converter prints "fully_quantize: 0, …" while quantizing. Users should see liteship's output, so those
calls run with fd 2 pointed at /dev/null. Python's own ``sys.stderr`` is moved to a duplicate of the
real stderr for the duration, so progress bars and warnings from Python still show. ``liteship -v``
(``LITESHIP_VERBOSE=1``) turns this off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_lock = threading.Lock()


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Within the block, native writes to fd 2 are dropped; Python's ``sys.stderr`` still works."""
    if os.environ.get("LITESHIP_VERBOSE") or threading.current_thread() is not threading.main_thread():
        yield  # fd redirection is process-wide: only the main thread may do it
        return
    with _lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, AttributeError, ValueError):
            yield
            return
        old_stderr = sys.stderr
        replacement = None
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
            replacement = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
            sys.stderr = replacement
            yield
        finally:
            with contextlib.suppress(Exception):
                if replacement is not None:
                    replacement.flush()
            sys.stderr = old_stderr
            os.dup2(saved, 2)
            os.close(saved)
            if replacement is not None:
                with contextlib.suppress(Exception):
                    replacement.close()


__all__ = ["native_stderr_silenced"]
