"""The package container: a canonical, uncompressed zip, and a strict, bounded reader for it.

Packages are ordinary zip files (``unzip -l`` lists them) written in one canonical form: members stored
uncompressed, in a fixed order (``manifest.json``, ``signature.json``, then the other files sorted), with
a fixed timestamp (1980-01-01), no extra fields and no comments. So the same contents always give the
same bytes, and the verifier can rebuild every byte that is not file data and compare it: a changed byte
*anywhere* in the archive is detected, not only inside the hashed files. Stored members also make zip
bombs impossible: no member expands beyond the bytes it occupies, and sizes are bounded up front.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from liteship.errors import PackageError
from liteship.package.manifest import MANIFEST_NAME, SIGNATURE_NAME

MAX_PACKAGE_BYTES = 2**31 - 1  # no zip64; a .tflite cannot exceed this either
MAX_MEMBERS = 64
_DOS_DATE, _DOS_TIME = (0 << 9) | (1 << 5) | 1, 0  # 1980-01-01 00:00:00
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
_END = struct.Struct("<IHHHHIIH")  # 22 bytes
_FILE_ATTR = (stat.S_IFREG | 0o644) << 16
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
TAMPERED = "Do not install it; rebuild it with `liteship package`, or fetch it again from its source."


def canonical_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    first = [n for n in (MANIFEST_NAME, SIGNATURE_NAME) if n in names]
    return first + sorted(names - set(first))


def _layout(entries: list[tuple[str, int, int]]) -> tuple[list[tuple[int, bytes]], bytes, int]:
    """For ``(name, crc, size)`` in order: ``([(offset, local header)], central dir + end record, total)``."""
    headers, central, offset = [], b"", 0
    for name, crc, size in entries:
        raw = name.encode("ascii")
        local = _LOCAL.pack(0x04034B50, 20, 0, 0, _DOS_TIME, _DOS_DATE, crc, size, size, len(raw), 0) + raw
        central += (
            _CENTRAL.pack(
                0x02014B50, (3 << 8) | 20, 20, 0, 0, _DOS_TIME, _DOS_DATE, crc, size, size, len(raw),
                0, 0, 0, 0, _FILE_ATTR, offset,
            )
            + raw
        )  # fmt: skip
        headers.append((offset, local))
        offset += len(local) + size
    end = _END.pack(0x06054B50, 0, 0, len(entries), len(entries), len(central), offset, 0)
    return headers, central + end, offset + len(central) + len(end)


def write_archive(members: dict[str, bytes]) -> bytes:
    """The canonical archive bytes for ``{name: content}`` (names must pass :func:`check_member_name`)."""
    order = canonical_order(members)
    entries = [(n, zlib.crc32(members[n]), len(members[n])) for n in order]
    headers, tail, total = _layout(entries)
    out = bytearray()
    for (offset, local), name in zip(headers, order, strict=True):
        assert len(out) == offset
        out += local + members[name]
    out += tail
    if len(out) != total or total > MAX_PACKAGE_BYTES:
        raise PackageError(f"the package would be {total} bytes; the limit is {MAX_PACKAGE_BYTES}.")
    return bytes(out)


def check_member_name(name: str) -> str:
    """Refuse path tricks: absolute paths, ``..``, backslashes, drive letters, odd characters."""
    why = None
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        why = "it is an absolute path"
    elif "\\" in name or "\x00" in name:
        why = "it contains a backslash or NUL"
    elif any(p in ("", ".", "..") for p in name.split("/")):
        why = "it has an empty, '.' or '..' path component (path traversal)"
    elif name.count("/") > 3 or not all(_PART.match(p) for p in name.split("/")):
        why = "only up to 4 levels of names made of A-Z a-z 0-9 . _ - are allowed"
    if why:
        raise PackageError(f"package member name {name!r} is unsafe: {why}.", hint=TAMPERED)
    return name


class ArchiveReader:
    """A package archive opened for verification; every member checked for safety on open.

    Args:
        path: The package file.
        max_bytes: Refuse larger files. Defaults to 2 GiB.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = MAX_PACKAGE_BYTES) -> None:
        self.path = Path(path)
        where = repr(str(path))
        if not self.path.is_file():
            state = "is a directory" if self.path.is_dir() else "does not exist"
            raise PackageError(f"package {where} {state}; expected a .lsp file.", hint="Check the path.")
        self.size = self.path.stat().st_size
        if self.size > max_bytes:
            raise PackageError(
                f"package {where} is {self.size} bytes, more than the limit of {max_bytes}.", hint=TAMPERED
            )
        self.fh: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        try:
            infos = zipfile.ZipFile(self.fh).infolist()
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            NotImplementedError,
            OSError,
            ValueError,
            EOFError,
        ) as e:
            self.fh.seek(0)
            starts_like_zip = self.fh.read(4) == b"PK\x03\x04"
            self.close()
            if starts_like_zip:  # a zip's first member header, but no readable end: cut short
                raise PackageError(
                    f"package {where} is truncated or corrupt: it starts as a zip archive but cannot be "
                    f"read as one ({e}).",
                    hint="The download or copy was probably cut short. " + TAMPERED,
                ) from e
            raise PackageError(
                f"{where} is not a liteship package: it is not a readable zip archive ({e}).",
                hint="Give a .lsp file made by `liteship package`.",
            ) from e
        try:
            if "manifest.json" not in {i.filename for i in infos}:
                self._check_end_record(where)
            self.members = self._check_members(infos)
        except PackageError:
            self.close()
            raise

    def _check_end_record(self, where: str) -> None:
        """Without a manifest, tell a truncated package from an unsigned one. A truncated package has no
        zip end record at its end, and zipfile then finds the one of an archive stored inside it
        (golden.npz), listing that archive's members. (Bytes after a package's own end record are refused
        later, by the canonical-form check.)"""
        tail_len = min(self.size, 22 + 0xFFFF)  # the end record and at most a 64 KiB comment
        self.fh.seek(self.size - tail_len)
        tail = self.fh.read(tail_len)
        pos = tail.rfind(b"PK\x05\x06")
        ends_file = pos >= 0 and len(tail) >= pos + 22
        if ends_file:
            comment_len = int.from_bytes(tail[pos + 20 : pos + 22], "little")
            ends_file = pos + 22 + comment_len == len(tail)
        if not ends_file:
            raise PackageError(
                f"package {where} is truncated or corrupt: its zip end record is not at the end of the "
                f"file ({self.size} bytes).",
                hint="The download or copy was probably cut short. " + TAMPERED,
            )

    def _check_members(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        if len(infos) > MAX_MEMBERS:
            raise PackageError(f"the package has {len(infos)} members; at most {MAX_MEMBERS} are allowed.")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = check_member_name(info.filename)
            mode = info.external_attr >> 16  # Unix mode; its type bits may be 0 (unknown) or S_IFREG
            if info.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise PackageError(
                    f"package member {name!r} is {kind}; only regular files are allowed.", hint=TAMPERED
                )
            if info.flag_bits & 0x1:
                raise PackageError(f"package member {name!r} is encrypted.", hint=TAMPERED)
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise PackageError(
                    f"package member {name!r} is compressed ({info.compress_size} bytes expanding to "
                    f"{info.file_size}); liteship packages store members uncompressed, so extraction "
                    "stays bounded by the file size.",
                    hint=TAMPERED,
                )
            if not 0 <= info.header_offset < self.size:
                raise PackageError(f"package member {name!r} starts outside the file.", hint=TAMPERED)
            if info.file_size > self.size:
                raise PackageError(
                    f"package member {name!r} claims {info.file_size} bytes, more than the file."
                )
            if name.lower() in {m.lower() for m in members}:
                raise PackageError(f"package member {name!r} appears twice (ignoring case).", hint=TAMPERED)
            members[name] = info
        return members

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        self.fh.seek(info.header_offset)
        head = self.fh.read(_LOCAL.size)
        if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
            raise PackageError(f"package member {info.filename!r} has a corrupt header.", hint=TAMPERED)
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        start = info.header_offset + _LOCAL.size + name_len + extra_len
        if start + info.file_size > self.size:
            raise PackageError(
                f"package member {info.filename!r} runs past the end of the file.", hint=TAMPERED
            )
        return start

    def read(self, name: str, limit: int) -> bytes:
        """The stored bytes of a (small) member, refused beyond ``limit`` bytes."""
        info = self.members[name]
        if info.file_size > limit:
            raise PackageError(
                f"{name} is {info.file_size} bytes; at most {limit} are expected.", hint=TAMPERED
            )
        self.fh.seek(self._data_offset(info))
        return self.fh.read(info.file_size)

    def digest(self, name: str, sink: Callable[[bytes], object] | None = None) -> tuple[str, int]:
        """``(sha256 hex, crc32)`` of a member's bytes, streamed in 1 MiB chunks (each passed to ``sink``)."""
        info = self.members[name]
        self.fh.seek(self._data_offset(info))
        sha, crc, left = hashlib.sha256(), 0, info.file_size
        while left:
            chunk = self.fh.read(min(left, 1 << 20))
            if not chunk:
                raise PackageError(f"package member {name!r} is truncated.", hint=TAMPERED)
            sha.update(chunk)
            crc = zlib.crc32(chunk, crc)
            if sink is not None:
                sink(chunk)
            left -= len(chunk)
        return sha.hexdigest(), crc

    def check_canonical(self) -> None:
        """Every byte outside file data must be what :func:`write_archive` writes."""
        order = canonical_order(self.members)
        entries = [(n, self.members[n].CRC, self.members[n].file_size) for n in order]
        headers, tail, total = _layout(entries)
        problem = None
        if [i.filename for i in self.members.values()] != order:
            problem = f"members are not in canonical order {order}"
        elif total != self.size:
            problem = f"the file is {self.size} bytes; its contents need exactly {total}"
        else:
            for (offset, local), name in zip(headers, order, strict=True):
                self.fh.seek(offset)
                if self.fh.read(len(local)) != local:
                    problem = f"the header of {name!r} at byte {offset} was modified"
                    break
            else:
                self.fh.seek(self.size - len(tail))
                if self.fh.read(len(tail)) != tail:
                    problem = "the zip directory at the end of the file was modified"
        if problem:
            raise PackageError(
                f"the package archive is not in liteship's canonical form: {problem}.", hint=TAMPERED
            )

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ArchiveReader", "write_archive", "check_member_name", "canonical_order", "MAX_PACKAGE_BYTES"]
