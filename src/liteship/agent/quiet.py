"""Silence LiteRT's native stderr lines on any thread, and keep the agent's own logs visible meanwhile.

:func:`liteship._quiet.native_stderr_silenced` (used by every ``LiteRTRunner``) only acts on the main
thread, because pointing file descriptor 2 at /dev/null is process-wide. The agent smoke-tests updates
on its updater thread, where LiteRT would print "INFO: Created TensorFlow Lite XNNPACK delegate for
CPU." between the JSON log lines. :func:`native_output_silenced` does the same redirection from any
thread (``native_stderr_silenced(any_thread=True)``), under the same lock, so the two never
interleave. The agent's logs are written to a duplicate
of the real stderr (:func:`private_stderr`), so they are not lost while fd 2 is silenced.
``LITESHIP_VERBOSE=1`` turns silencing off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import IO

from liteship import _quiet


def native_output_silenced() -> contextlib.AbstractContextManager[None]:
    """Within the block, native writes to fd 2 are dropped (on the main thread, LiteRTRunner does it)."""
    if threading.current_thread() is threading.main_thread():
        # the runner silences its own interpreter creation here; taking the lock twice would block
        return contextlib.nullcontext()
    return _quiet.native_stderr_silenced(any_thread=True)


def private_stderr() -> IO[str]:
    """A line-buffered duplicate of the real stderr that fd-2 silencing does not affect."""
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):  # no real file behind sys.stderr (e.g. captured)
        return sys.stderr


__all__ = ["native_output_silenced", "private_stderr"]
