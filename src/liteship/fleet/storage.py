"""Artifact store, addressed by content hash (sha256).

The server only needs four operations, so an S3-compatible store can replace :class:`LocalArtifactStore`
by implementing :class:`ArtifactStore` (``open_range`` maps to a ranged GET).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from liteship.errors import FleetError

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 16


class ArtifactStore(Protocol):
    """Content-addressed blobs."""

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a file; returns ``(sha256, size)``. Storing the same content twice is a no-op."""
        ...

    def size(self, sha256: str) -> int | None:
        """Size of a stored blob, None when absent."""
        ...

    def open_range(self, sha256: str, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes ``start..end`` (inclusive) of a stored blob."""
        ...

    def delete(self, sha256: str) -> None: ...


def check_sha256(value: str) -> str:
    """Return ``value`` if it is a lowercase hex sha256; FleetError otherwise (no paths reach the disk)."""
    if not SHA256_RE.match(value):
        raise FleetError(f"not a sha256 content hash: {value[:80]!r}", hint="Expected 64 hex digits.")
    return value


def hash_file(path: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


class LocalArtifactStore:
    """Blobs under ``root/ab/abcdef…``, written to a temp file, fsynced and renamed (never half-visible)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def put_file(self, path: Path) -> tuple[str, int]:
        sha, size = hash_file(path)
        dest = self._path(sha)
        if dest.exists():
            return sha, size
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha, size

    def size(self, sha256: str) -> int | None:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def open_range(self, sha256: str, start: int, end: int) -> Iterator[bytes]:
        f: BinaryIO
        with open(self._path(sha256), "rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = f.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)
