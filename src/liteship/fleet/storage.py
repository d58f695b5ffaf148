"""Artifact store, addressed by content hash (sha256).

The server only needs four operations (and, optionally, a URL devices can fetch from directly), so
:class:`LocalArtifactStore` (``<data_dir>/artifacts``, the default) and
:class:`liteship.fleet.s3.S3ArtifactStore` (``artifacts="s3://bucket/prefix"``) are interchangeable;
:func:`open_store` picks one from the settings. A store that cannot be reached raises
:class:`StoreUnavailable` (HTTP 503): the request fails whole and the caller may retry.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from liteship.fleet.blobs import CHUNK, ArtifactStore, check_sha256, hash_file

if TYPE_CHECKING:
    from liteship.fleet.settings import Settings


def open_store(settings: Settings, data_dir: Path) -> ArtifactStore:
    """The store the settings name: ``s3://…`` (checked now: reachable, bucket there, credentials
    valid and allowed to write), a local folder, or by default ``<data_dir>/artifacts``.

    Raises:
        UsageError: S3 credentials are missing or refused, or the bucket does not exist.
        StoreUnavailable: the S3 endpoint cannot be reached.
    """
    where = settings.artifacts
    if where and where.startswith("s3://"):
        from liteship.fleet.s3 import S3ArtifactStore  # boto3 loads only for an s3:// store

        store = S3ArtifactStore.from_settings(settings)
        store.check()
        return store
    return LocalArtifactStore(Path(where) if where else data_dir / "artifacts")


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

    def download_url(self, sha256: str, filename: str | None = None) -> str | None:
        return None  # the API serves local files itself
