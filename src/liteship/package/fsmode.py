"""File modes for atomic writes: mkstemp/mkdtemp create 0600/0700 entries, which must not leak out.

A package or a model is not a secret: a new file gets the mode ``open()`` would give it (0o666 minus the
umask), a replaced file keeps its own. Private keys set their own 0600 (see :mod:`.signing`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where /proc allows (setting it races threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def file_mode(path: str | os.PathLike) -> int:
    """The mode for writing ``path``: an existing file's own, else a new file's (0o666 minus the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def dir_mode() -> int:
    """A new folder's mode, as ``mkdir`` would give it (0o777 minus the umask)."""
    return 0o777 & ~current_umask()


__all__ = ["current_umask", "file_mode", "dir_mode"]
