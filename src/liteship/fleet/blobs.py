"""Content addressing shared by every artifact store (``fleet/storage.py``: the local one and
:func:`~liteship.fleet.storage.open_store`; ``fleet/s3.py``): the ``ArtifactStore`` protocol, the sha256
check and the hashing of a file. Stores import it; it imports no store (no cycle between them)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

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

    def download_url(self, sha256: str, filename: str | None = None) -> str | None:
        """A URL devices may fetch the blob from directly (HTTP Range included), or None to have the
        API stream it with :meth:`open_range`."""
        ...


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
