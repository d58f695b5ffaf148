"""Crash-safe file operations: write to a temp file, fsync, atomic rename, fsync the folder.

:func:`crash_point` marks the moments between two durable writes, where a crash leaves a distinct state
on disk. It does nothing unless ``LITESHIP_AGENT_CRASH_POINT_PAUSE_S`` is set: the fault tests set it
(to a few milliseconds) so that kills at random moments land between every two writes of an update,
not only in its slow steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from liteship.agent.sinks import event

CRASH_POINT_PAUSE_ENV = "LITESHIP_AGENT_CRASH_POINT_PAUSE_S"


def _crash_point_pause() -> float:
    try:
        return max(0.0, float(os.environ.get(CRASH_POINT_PAUSE_ENV) or 0.0))
    except ValueError:
        return 0.0


_PAUSE_S = _crash_point_pause()


def crash_point() -> None:
    """A moment where a crash leaves a distinct on-disk state: pauses only in fault tests (see above)."""
    if _PAUSE_S:
        time.sleep(_PAUSE_S)


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so a rename inside it survives power loss (no-op where unsupported)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    crash_point()  # after a rename made durable


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: readers see the old or the new content, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError:  # a full disk (ENOSPC, EFBIG, EIO): leave no half-written temporary behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    crash_point()
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def read_json(path: str | Path, default: Any = None) -> Any:
    """Read JSON; a missing or unreadable file gives ``default`` (a half-written file cannot exist
    because every writer goes through :func:`atomic_write_json`)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def read_json_object(path: str | Path, *, what: str, set_aside: bool = True) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file does not exist.

    A file that exists but is not a JSON object (truncated by a failing disk or a power cut on a file
    system without ordered writes, edited by hand) is moved aside to ``<name>.damaged-<time>`` — kept
    for a person, never overwritten — and a warning says so; the caller starts from ``{}``.

    Args:
        path: The file.
        what: What the file holds, for the warning (e.g. "the agent's state").
        set_aside: Move a damaged file aside (for files the caller rewrites). Defaults to True; with
            False the file stays where it is (nothing rewrites it) and the warning says ``what``.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        data, problem = None, f"{type(e).__name__}: {str(e)[:200]}"
    else:
        problem = f"a JSON {type(data).__name__}, not an object"
    if isinstance(data, dict):
        return data
    if not set_aside:
        event(f"{path.name} is damaged ({problem}); {what}", 30, file=str(path))
        return {}
    aside = path.with_name(f"{path.name}.damaged-{time.time_ns()}")
    with contextlib.suppress(OSError):
        os.replace(path, aside)
        fsync_dir(path.parent)
    event(
        f"{path.name} is damaged ({problem}); {what} starts afresh and the damaged file is kept as "
        f"{aside.name}",
        30,
        file=str(path),
        kept_as=str(aside),
    )
    return {}


def contained(root: str | Path, *parts: str) -> Path:
    """``root/part/…``, resolved, after checking it stays inside ``root`` (also resolved).

    Every path the agent builds from a string it did not choose goes through here, so a name like
    ``../../versions/1.0.0`` or an absolute path can never reach a model slot or leave the state folder.

    Raises:
        ValueError: The joined path is not strictly inside ``root``.
    """
    base = Path(root).resolve()
    path = base.joinpath(*parts).resolve()
    if path == base or not path.is_relative_to(base):
        raise ValueError(f"{'/'.join(parts)[:200]!r} is not a name inside {base}.")
    return path


def atomic_symlink(target: str | Path, link: str | Path) -> None:
    """Point ``link`` at ``target`` atomically (create a temp link, rename it over the old one)."""
    link = Path(link)
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(str(target), tmp)
    crash_point()
    os.replace(tmp, link)
    fsync_dir(link.parent)


def fsync_tree(root: str | Path) -> None:
    """fsync every file and folder under ``root`` (before it is renamed into place)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)
