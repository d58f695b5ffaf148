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

_lock = threading.RLock()  # reentrant: a redirection inside another one just stacks


@contextlib.contextmanager
def _fd2_to_devnull() -> Iterator[int | None]:
    """Point fd 2 at /dev/null (under the lock: it is process-wide); yields the saved real stderr fd,
    or ``None`` when there is no fd 2 to redirect."""
    with _lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, AttributeError, ValueError):
            yield None
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
            yield saved
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def native_stderr_silenced(*, any_thread: bool = False) -> Iterator[None]:
    """Within the block, native writes to fd 2 are dropped; Python's ``sys.stderr`` still works.

    Args:
        any_thread: Also silence when called off the main thread (fd 2 only: ``sys.stderr`` is left
            alone there, so callers keep their own handle on the real stderr). Defaults to ``False``:
            off the main thread nothing is redirected.
    """
    on_main = threading.current_thread() is threading.main_thread()
    if os.environ.get("LITESHIP_VERBOSE") or not (on_main or any_thread):
        yield
        return
    with _fd2_to_devnull() as saved:
        if saved is None or not on_main:
            yield
            return
        old_stderr = sys.stderr
        replacement = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
        sys.stderr = replacement
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                replacement.flush()
            sys.stderr = old_stderr
            with contextlib.suppress(Exception):
                replacement.close()


def _flush_c_streams() -> None:
    """``fflush(NULL)``: C's buffered stdout goes out while fd 1 still points at the sink."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


class CapturedStderr:
    """What native code wrote to fd 2 inside :func:`native_stderr_captured` (``text`` once it ends)."""

    text: str = ""


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[CapturedStderr]:
    """Like :func:`native_stderr_silenced`, but keep what native code printed, for parsing (e.g. LiteRT's
    list of ops an accelerator rejects). Under ``LITESHIP_VERBOSE`` the text is also shown."""
    import tempfile

    captured = CapturedStderr()
    with _lock, tempfile.TemporaryFile() as sink:
        try:
            sys.stderr.flush()
            sys.stdout.flush()
            saved, saved_out = os.dup(2), os.dup(1)
        except (OSError, AttributeError, ValueError):
            yield captured
            return
        try:
            # Some native libraries print to C's stdout (LiteRT's OpenCL probe): kept out of --json too.
            os.dup2(sink.fileno(), 2)
            os.dup2(sink.fileno(), 1)
            yield captured
        finally:
            _flush_c_streams()
            os.dup2(saved, 2)
            os.dup2(saved_out, 1)
            os.close(saved)
            os.close(saved_out)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
            if os.environ.get("LITESHIP_VERBOSE"):
                sys.stderr.write(captured.text)


__all__ = ["native_stderr_silenced", "native_stderr_captured", "CapturedStderr"]
