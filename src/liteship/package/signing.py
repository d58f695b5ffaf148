"""ed25519 keys and signatures for packages.

Keys are stored as PEM (PKCS#8 private key, SubjectPublicKeyInfo public key), which OpenSSL and every
crypto library read. A public key may also be given as the base64 of its 32 raw bytes (handy in a
config file or an environment variable). The key id is the first 16 hex digits of the sha256 of the
raw public key; manifests and signatures carry it so a wrong key is named, not just refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from liteship.errors import SignatureError
from liteship.types import ReportMixin

KeyLike = str | os.PathLike | bytes | Ed25519PrivateKey | Ed25519PublicKey


@dataclass(frozen=True)
class KeyPair(ReportMixin):
    """Where :func:`generate_keypair` wrote a key pair, and its key id."""

    private_path: str
    public_path: str
    key_id: str


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256(raw 32-byte public key)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(
    private_path: str | os.PathLike, public_path: str | os.PathLike | None = None, *, overwrite: bool = False
) -> KeyPair:
    """Create an ed25519 key pair: the private key (mode 0600) and the public key, both PEM.

    Args:
        private_path: Where to write the private key, e.g. ``keys/liteship.key``.
        public_path: Where to write the public key. Defaults to ``private_path`` with suffix ``.pub``.
        overwrite: Replace existing files. Defaults to ``False``.

    Returns:
        A :class:`KeyPair` with both paths and the key id.

    Raises:
        SignatureError: A file exists and ``overwrite`` is false, or a file cannot be written.
    """
    priv_path = Path(private_path)
    pub_path = Path(public_path) if public_path is not None else priv_path.with_suffix(".pub")
    if priv_path.resolve() == pub_path.resolve():
        raise SignatureError(f"the private and public key paths are the same ({str(priv_path)!r}).")
    for p in (priv_path, pub_path):
        if p.exists() and not overwrite:
            raise SignatureError(
                f"{str(p)!r} already exists; refusing to overwrite a key.",
                hint="Choose another path, or pass overwrite=True if you mean to replace the key.",
            )
    key = Ed25519PrivateKey.generate()
    pem_priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_atomic(priv_path, pem_priv, 0o600)
    _write_atomic(pub_path, pem_pub, 0o644)
    return KeyPair(str(priv_path), str(pub_path), key_id(key.public_key()))


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have removed bits; never add any to 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise SignatureError(f"cannot write key file {str(path)!r}: {e.strerror or e}.") from e


def _read_key_bytes(source: str | os.PathLike | bytes, what: str) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, f"the {what} bytes"
    path = Path(source)
    if not path.is_file():
        raise SignatureError(
            f"{what} file {str(path)!r} does not exist.", hint="Create a key pair with `liteship keygen`."
        )
    return path.read_bytes(), repr(str(path))


def load_private_key(source: KeyLike) -> Ed25519PrivateKey:
    """Load an ed25519 private key from a PEM file/bytes (or pass a key object through)."""
    if isinstance(source, Ed25519PrivateKey):
        return source
    if isinstance(source, Ed25519PublicKey):
        raise SignatureError("signing needs the private key; a public key was given.")
    data, where = _read_key_bytes(source, "private key")
    if b"PUBLIC KEY" in data:
        raise SignatureError(
            f"{where} is a public key; signing needs the private key.",
            hint="Give the .key file that `liteship keygen` wrote beside the .pub.",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise SignatureError(
            f"{where} is not an unencrypted PEM private key ({e}).",
            hint="Create one with `liteship keygen`.",
        ) from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{where} is a {type(key).__name__}; liteship signs with ed25519 keys only.")
    return key


def load_public_key(source: KeyLike) -> Ed25519PublicKey:
    """Load an ed25519 public key: PEM file/bytes, base64 of the raw 32 bytes, or a key object."""
    if isinstance(source, Ed25519PublicKey):
        return source
    if isinstance(source, Ed25519PrivateKey):
        raise SignatureError("verification needs the public key; a private key object was given.")
    data, where = _read_key_bytes(source, "public key")
    if b"PRIVATE KEY" in data:
        raise SignatureError(
            f"{where} is a private key; verification needs the public key.",
            hint="Give the .pub file; keep the private key off devices and servers.",
        )
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as e:
            raise SignatureError(f"{where} is not a readable PEM public key ({e}).") from e
        if not isinstance(key, Ed25519PublicKey):
            raise SignatureError(f"{where} is a {type(key).__name__}; packages are signed with ed25519.")
        return key
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SignatureError(
            f"{where} is neither a PEM public key nor the base64 of 32 raw ed25519 bytes.",
            hint="Give the .pub file written by `liteship keygen`.",
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def sign(private_key: Ed25519PrivateKey, message: bytes) -> str:
    """Base64 ed25519 signature of ``message`` (deterministic: same key and message, same bytes)."""
    return base64.b64encode(private_key.sign(message)).decode("ascii")


def verify_signature(public_key: Ed25519PublicKey, message: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is a valid signature of ``message`` by ``public_key``."""
    try:
        sig = base64.b64decode(signature_b64, validate=True)
        public_key.verify(sig, message)
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True


__all__ = [
    "KeyLike",
    "KeyPair",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign",
    "verify_signature",
]
