"""Verify a package, open it, or extract it safely — nothing is trusted or written before it verifies.

Checks, in order: the file is a bounded zip; member names are safe (no ``..``, absolute paths, links,
compression, duplicates); the signature over ``manifest.json`` verifies with the given key; the members
are exactly the files the manifest lists, at the listed sizes; every byte outside file data is in
canonical form; every file's sha256 (and zip CRC) matches.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from liteship._fs import dir_mode
from liteship.errors import PackageError, SignatureError
from liteship.package.archive import MAX_PACKAGE_BYTES, TAMPERED, ArchiveReader, canonical_order
from liteship.package.golden import read_golden
from liteship.package.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest
from liteship.package.signing import KeyLike, key_id, load_public_key, verify_signature

MAX_MANIFEST_BYTES = 8 << 20
MAX_SIGNATURE_BYTES = 64 << 10
Sink = Callable[[str], Callable[[bytes], object]]


@dataclass(frozen=True)
class Package:
    """A verified package held in memory: its manifest and the bytes of every file."""

    path: str
    manifest: Manifest
    files: dict[str, bytes]

    @property
    def model_bytes(self) -> bytes:
        return self.files[self.manifest.model["file"]]

    def golden(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``(inputs, expected outputs)`` by tensor name, each stacked ``(N, ...)``."""
        return read_golden(self.files[self.manifest.golden["file"]], self.manifest.golden)


def verify_package(
    path: str | os.PathLike, public_key: KeyLike, *, max_bytes: int = MAX_PACKAGE_BYTES
) -> Manifest:
    """Verify a package's signature and every byte of it.

    Args:
        path: The ``.lsp`` file.
        public_key: The signer's ed25519 public key (``.pub`` path, PEM/base64 bytes or key object).
        max_bytes: Refuse larger files. Defaults to 2 GiB.

    Returns:
        The verified :class:`Manifest`.

    Raises:
        SignatureError: Wrong key, or a manifest changed after signing.
        PackageError: Not a package, unsafe or compressed members, missing/extra/changed files.
    """
    with ArchiveReader(path, max_bytes=max_bytes) as reader:
        return _verify(reader, public_key)


def open_package(
    path: str | os.PathLike, public_key: KeyLike, *, max_bytes: int = MAX_PACKAGE_BYTES
) -> Package:
    """Verify a package and return it in memory (see :func:`verify_package` for the checks)."""
    chunks: dict[str, list[bytes]] = {}
    with ArchiveReader(path, max_bytes=max_bytes) as reader:
        manifest = _verify(reader, public_key, lambda name: chunks.setdefault(name, []).append)
    return Package(str(path), manifest, {n: b"".join(c) for n, c in chunks.items()})


def extract_verified(path: str | os.PathLike, public_key: KeyLike, dest_dir: str | os.PathLike) -> Manifest:
    """Verify a package while copying it into a temporary folder, then rename that folder to ``dest_dir``.

    Files are fsynced before the rename, so ``dest_dir`` either does not exist or holds the complete,
    verified package (``manifest.json``, ``signature.json`` and every listed file).

    Args:
        path: The ``.lsp`` file.
        public_key: The signer's ed25519 public key.
        dest_dir: Where the files end up; must not exist, or be an empty folder.

    Raises:
        PackageError, SignatureError: As :func:`verify_package`; ``dest_dir`` is then left untouched.
    """
    dest = Path(dest_dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise PackageError(
            f"cannot extract into {str(dest)!r}: it exists and is not an empty folder.",
            hint="Extract into a new folder, e.g. incoming/<version>.",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    os.chmod(tmp, dir_mode())  # mkdtemp's 0700 would become the installed folder's mode
    handles: dict[str, BinaryIO] = {}

    def sink(name: str) -> Callable[[bytes], object]:
        target = tmp / name
        target.parent.mkdir(parents=True, exist_ok=True)
        handles[name] = open(target, "wb")  # noqa: SIM115 - closed below
        return handles[name].write

    try:
        with ArchiveReader(path) as reader:
            manifest = _verify(reader, public_key, sink)
        for fh in handles.values():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        _fsync_dir(tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        for fh in handles.values():
            fh.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _verify(reader: ArchiveReader, public_key: KeyLike, sink: Sink | None = None) -> Manifest:
    where = repr(str(reader.path))
    for name in (MANIFEST_NAME, SIGNATURE_NAME):
        if name not in reader.members:
            raise PackageError(
                f"package {where} has no {name}; it is unsigned or not a liteship package.", hint=TAMPERED
            )
    signature = _signature(reader.read(SIGNATURE_NAME, MAX_SIGNATURE_BYTES), where)
    manifest_bytes = reader.read(MANIFEST_NAME, MAX_MANIFEST_BYTES)
    public = load_public_key(public_key)
    expected_id = key_id(public)
    if signature["key_id"] != expected_id:
        raise SignatureError(
            f"package {where} was signed by key {signature['key_id']}, but the given public key is {expected_id}.",
            hint="Verify with the public key of the key pair that signed it, or re-sign the package with yours.",
        )
    if not verify_signature(public, manifest_bytes, signature["signature"]):
        raise SignatureError(
            f"the manifest of {where} does not match its signature: it was changed after signing.",
            hint=TAMPERED,
        )
    manifest = Manifest.from_bytes(manifest_bytes)
    if manifest.key_id != expected_id:
        raise SignatureError(
            f"the manifest of {where} names key {manifest.key_id}, not its signer {expected_id}."
        )
    present = set(reader.members) - {MANIFEST_NAME, SIGNATURE_NAME}
    missing, extra = sorted(set(manifest.files) - present), sorted(present - set(manifest.files))
    if missing:
        raise PackageError(
            f"package {where} lacks {missing}, which its signed manifest lists.", hint=TAMPERED
        )
    if extra:
        raise PackageError(
            f"package {where} holds {extra}, which its signed manifest does not list (added after signing).",
            hint=TAMPERED,
        )
    for name, entry in manifest.files.items():
        if reader.members[name].file_size != entry.size:
            size = reader.members[name].file_size
            raise PackageError(
                f"{name} in {where} is {size} bytes; the signed manifest says {entry.size}.", hint=TAMPERED
            )
    reader.check_canonical()
    if sink is not None:
        for name, data in (
            (MANIFEST_NAME, manifest_bytes),
            (SIGNATURE_NAME, reader.read(SIGNATURE_NAME, MAX_SIGNATURE_BYTES)),
        ):
            sink(name)(data)
    for name in canonical_order(present):
        sha, crc = reader.digest(name, sink(name) if sink is not None else None)
        if sha != manifest.files[name].sha256:
            raise PackageError(
                f"{name} in {where} was modified: its sha256 is {sha[:16]}…, the signed manifest says "
                f"{manifest.files[name].sha256[:16]}….",
                hint=TAMPERED,
            )
        if crc != reader.members[name].CRC:
            raise PackageError(f"the zip checksum of {name} in {where} was modified.", hint=TAMPERED)
    return manifest


def _signature(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
    ok = isinstance(doc, dict) and doc.get("algorithm") == "ed25519"
    if not ok or not isinstance(doc.get("key_id"), str) or not isinstance(doc.get("signature"), str):
        raise SignatureError(
            f"the {SIGNATURE_NAME} of {where} is unreadable; expected {{algorithm: ed25519, key_id, signature}}.",
            hint=TAMPERED,
        )
    return doc


__all__ = ["Package", "verify_package", "open_package", "extract_verified", "MAX_PACKAGE_BYTES"]
