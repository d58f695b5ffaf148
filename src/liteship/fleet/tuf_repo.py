"""The server's TUF repository (python-tuf metadata API): root, targets, snapshot, timestamp; ed25519.

Layout under ``root_dir``::

    metadata/   1.root.json … N.root.json, root.json (latest), N.targets.json, N.snapshot.json,
                timestamp.json — served as-is under /tuf/metadata/ (consistent snapshots)
    keys/       root.pem, targets.pem, online.pem (PKCS8 ed25519)

``online.pem`` (timestamp + snapshot) must stay on the server, which re-signs those roles before they
expire. ``root.pem`` and ``targets.pem`` may be moved off the server: without ``targets.pem`` each
publish leaves the new targets metadata to be signed by the CLI (:meth:`TufRepository.draft_targets`,
then :meth:`TufRepository.install_targets`). Devices pin ``root.json`` and use ``tuf.ngclient.Updater``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from liteship.errors import FleetError

METADATA_NAME = re.compile(r"^(?:[0-9]{1,10}\.)?(?:root|targets|snapshot|timestamp)\.json$")
ROLES = ("root", "targets", "snapshot", "timestamp")


@dataclass(frozen=True)
class Expiry:
    """Lifetimes per role (defaults: timestamp 1 day, snapshot and targets 7 days, root 1 year)."""

    timestamp: timedelta = timedelta(days=1)
    snapshot: timedelta = timedelta(days=7)
    targets: timedelta = timedelta(days=7)
    root: timedelta = timedelta(days=365)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def generate_key(path: Path) -> CryptoSigner:
    """Write a new ed25519 private key (mode 0600) and return a signer for it."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return CryptoSigner(key)


def load_signer(path: Path) -> CryptoSigner:
    """A signer for an ed25519 PEM private key file."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise FleetError(f"{path} is not an ed25519 private key.")
    return CryptoSigner(key)


class TufRepository:
    """TUF metadata on local disk, kept consistent under a file lock (several API workers share it)."""

    def __init__(self, root_dir: Path, expiry: Expiry | None = None) -> None:
        self.root_dir = Path(root_dir)
        self.metadata_dir = self.root_dir / "metadata"
        self.keys_dir = self.root_dir / "keys"
        self.expiry = expiry or Expiry()
        self._serializer = JSONSerializer(compact=False)

    # ---- files ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root_dir.mkdir(parents=True, exist_ok=True)
        with open(self.root_dir / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _write(self, name: str, md: Metadata) -> None:
        data = md.to_bytes(self._serializer)
        fd, tmp = tempfile.mkstemp(dir=self.metadata_dir, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.metadata_dir / name)

    def read_file(self, name: str) -> bytes | None:
        """Bytes of a metadata file to serve, or None (unknown or malformed names never touch the disk)."""
        if not METADATA_NAME.match(name):
            return None
        if name == "timestamp.json":
            self.refresh()
        try:
            return (self.metadata_dir / name).read_bytes()
        except FileNotFoundError:
            return None

    def _load(self, name: str) -> Metadata:
        return Metadata.from_file(str(self.metadata_dir / name))

    def _signer(self, role: str) -> CryptoSigner | None:
        path = self.keys_dir / ("online.pem" if role in ("snapshot", "timestamp") else f"{role}.pem")
        return load_signer(path) if path.exists() else None

    # ---- lifecycle ------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Create keys and version-1 metadata unless they exist (idempotent)."""
        with self._locked():
            if (self.metadata_dir / "1.root.json").exists():
                return
            self.metadata_dir.mkdir(parents=True, exist_ok=True)
            signers = {
                name: generate_key(self.keys_dir / f"{name}.pem") for name in ("root", "targets", "online")
            }
            now = _now()
            root = Root(expires=now + self.expiry.root, consistent_snapshot=True)
            for role in ROLES:
                signer = signers["online" if role in ("snapshot", "timestamp") else role]
                root.add_key(signer.public_key, role)
            root_md = Metadata(root)
            root_md.sign(signers["root"])
            self._write("1.root.json", root_md)
            self._write("root.json", root_md)
            targets_md = Metadata(Targets(expires=now + self.expiry.targets))
            targets_md.sign(signers["targets"])
            self._write("1.targets.json", targets_md)
            self._new_snapshot(targets_md.signed.version, signers["online"])

    def _new_snapshot(self, targets_version: int, online: CryptoSigner) -> None:
        now = _now()
        ts_path = self.metadata_dir / "timestamp.json"
        version = self._load("timestamp.json").signed.snapshot_meta.version + 1 if ts_path.exists() else 1
        snap = Snapshot(version=version, expires=now + self.expiry.snapshot)
        snap.meta["targets.json"] = MetaFile(version=targets_version)
        snap_md = Metadata(snap)
        snap_md.sign(online)
        self._write(f"{version}.snapshot.json", snap_md)
        self._new_timestamp(version, online)

    def _new_timestamp(self, snapshot_version: int, online: CryptoSigner) -> None:
        ts_path = self.metadata_dir / "timestamp.json"
        version = self._load("timestamp.json").signed.version + 1 if ts_path.exists() else 1
        ts = Timestamp(version=version, expires=_now() + self.expiry.timestamp)
        ts.snapshot_meta = MetaFile(version=snapshot_version)
        ts_md = Metadata(ts)
        ts_md.sign(online)
        self._write("timestamp.json", ts_md)

    def refresh(self) -> None:
        """Re-sign snapshot / timestamp (and targets, if its key is here) past half their lifetime."""
        ts = self._load("timestamp.json").signed
        now = _now()
        if ts.expires - now > self.expiry.timestamp / 2:
            return
        with self._locked():
            online = self._signer("online")
            if online is None:
                raise FleetError(
                    "the online TUF key (keys/online.pem) is missing; the server cannot re-sign."
                )
            ts = self._load("timestamp.json").signed
            snap = self._load(f"{ts.snapshot_meta.version}.snapshot.json").signed
            targets_version = snap.meta["targets.json"].version
            targets_signer = self._signer("targets")
            targets = self._load(f"{targets_version}.targets.json").signed
            if targets_signer is not None and targets.expires - now < self.expiry.targets / 2:
                self._write_targets(dict(targets.targets), targets_version + 1, targets_signer)
                self._new_snapshot(targets_version + 1, online)
            elif snap.expires - now < self.expiry.snapshot / 2:
                self._new_snapshot(targets_version, online)
            elif ts.expires - now < self.expiry.timestamp / 2:
                self._new_timestamp(ts.snapshot_meta.version, online)

    # ---- targets --------------------------------------------------------------------------------

    def current_targets(self) -> Targets:
        ts = self._load("timestamp.json").signed
        snap = self._load(f"{ts.snapshot_meta.version}.snapshot.json").signed
        return self._load(f"{snap.meta['targets.json'].version}.targets.json").signed

    def has_target(self, path: str, sha256: str) -> bool:
        target = self.current_targets().targets.get(path)
        return target is not None and target.hashes.get("sha256") == sha256

    @property
    def targets_key_online(self) -> bool:
        return (self.keys_dir / "targets.pem").exists()

    @staticmethod
    def _target_files(targets: dict[str, tuple[str, int]]) -> dict[str, TargetFile]:
        return {
            p: TargetFile(length=size, hashes={"sha256": sha}, path=p) for p, (sha, size) in targets.items()
        }

    def _write_targets(self, files: dict[str, TargetFile], version: int, signer: CryptoSigner) -> None:
        md = Metadata(Targets(version=version, expires=_now() + self.expiry.targets, targets=files))
        md.sign(signer)
        self._write(f"{version}.targets.json", md)

    def update_targets(self, targets: dict[str, tuple[str, int]]) -> bool:
        """Make ``targets`` (path → (sha256, size)) the signed target list, if the targets key is here.

        Returns:
            True when signed and published; False when the targets key is offline (sign with the CLI).
        """
        with self._locked():
            signer = self._signer("targets")
            if signer is None:
                return False
            version = self.current_targets().version + 1
            self._write_targets(self._target_files(targets), version, signer)
            self._new_snapshot(version, self._require_online())
        return True

    def draft_targets(self, targets: dict[str, tuple[str, int]]) -> bytes:
        """Unsigned next-version targets metadata listing ``targets``, for offline signing."""
        version = self.current_targets().version + 1
        md = Metadata(
            Targets(
                version=version, expires=_now() + self.expiry.targets, targets=self._target_files(targets)
            )
        )
        return md.to_bytes(self._serializer)

    def install_targets(self, data: bytes) -> int:
        """Publish targets metadata signed offline: checked against root's targets keys and version.

        Returns:
            The installed version.

        Raises:
            FleetError: not targets metadata, wrong signature, stale version, or already expired.
        """
        try:
            md = Metadata[Targets].from_bytes(data)
        except Exception as e:  # noqa: BLE001 - any parse failure is the client's fault
            raise FleetError(f"not TUF targets metadata: {e}") from None
        if not isinstance(md.signed, Targets):
            raise FleetError(f"expected targets metadata, got {md.signed.type}.")
        with self._locked():
            root = self._load("root.json")
            try:
                root.verify_delegate("targets", md)
            except RepositoryError as e:
                raise FleetError(
                    f"targets metadata is not signed by the root's targets key(s): {e}"
                ) from None
            current = self.current_targets().version
            if md.signed.version != current + 1:
                raise FleetError(f"targets version {md.signed.version} must be {current + 1}.")
            if md.signed.is_expired(_now()):
                raise FleetError("targets metadata is already expired.")
            self._write(f"{md.signed.version}.targets.json", md)
            self._new_snapshot(md.signed.version, self._require_online())
        return md.signed.version

    def _require_online(self) -> CryptoSigner:
        online = self._signer("online")
        if online is None:
            raise FleetError(
                "the online TUF key (keys/online.pem) is missing.", hint="Restore it from backup."
            )
        return online
