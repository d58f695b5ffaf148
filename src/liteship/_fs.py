"""Atomic file writes and their modes, for every layer (stdlib only).

mkstemp/mkdtemp create 0600/0700 entries, which must not leak out: a package, a model or a report is not
a secret, so a new file gets the mode ``open()`` would give it (0o666 minus the umask) and a replaced file
keeps its own. Private keys set their own 0600 (see :mod:`liteship.package.signing`).
"""

from __future__ import annotations

import os
import stat
import tempfile
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


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file beside it, fsync, rename — readers never see half a file.

    Creates missing parent folders; keeps an existing file's mode (see :func:`file_mode`).

    Raises:
        OSError: The file cannot be written (the temp file is removed); callers turn it into their error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["current_umask", "file_mode", "dir_mode", "write_atomic"]
