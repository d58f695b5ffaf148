"""The server's tokens: generated on first start when none is configured, refused when weak and exposed.

    >>> settings, sources = ensure_secrets(Settings(data_dir="/tmp/fleet"))     # doctest: +SKIP
    >>> sources                                                                  # doctest: +SKIP
    {'admin_token': 'generated', 'enrollment_token': 'generated'}

Generated tokens live in ``<data_dir>/secrets.json`` (mode 0600, created exclusively, so several API
workers starting at once agree on one pair). A configured token (``LITESHIP_ADMIN_TOKEN``,
``LITESHIP_ENROLLMENT_TOKEN``) always wins over the file.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from pathlib import Path
from typing import Literal

from liteship.errors import UsageError
from liteship.fleet.settings import SECRET_FIELDS, Settings

SECRETS_FILE = "secrets.json"
Source = Literal["configured", "generated", "stored"]


def secrets_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / SECRETS_FILE


def prepare_data_dir(settings: Settings) -> Path:
    """Create ``data_dir`` (and parents) unless it exists.

    Raises:
        UsageError: ``data_dir`` exists and is not a folder.
    """
    path = Path(settings.data_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"`data_dir` {str(path)!r} is a file; the server needs a folder there for its SQLite "
            "database, artifacts and TUF metadata.",
            hint="Pick another `data_dir` (a new or existing folder).",
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UsageError(
            f"cannot read the stored tokens in {path}: {e}.",
            hint="Restore it from a backup, or delete it to generate new tokens (devices must re-enroll).",
        ) from None
    return {k: v for k, v in data.items() if k in SECRET_FIELDS and isinstance(v, str) and v}


def _create(path: Path, values: dict[str, str]) -> bool:
    """Write ``values`` to a new file (0600). False when another process created it first."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(values, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    return True


def ensure_secrets(settings: Settings) -> tuple[Settings, dict[str, Source]]:
    """Fill the tokens that are not configured from ``<data_dir>/secrets.json``, creating it if needed.

    Args:
        settings: the configuration; ``admin_token`` / ``enrollment_token`` None means "not configured".

    Returns:
        ``(settings with both tokens set, {field: "configured" | "generated" | "stored"})``.

    Raises:
        UsageError: ``data_dir`` is a file, or the stored tokens cannot be read.
    """
    missing = [name for name in SECRET_FIELDS if getattr(settings, name) is None]
    sources: dict[str, Source] = {name: "configured" for name in SECRET_FIELDS if name not in missing}
    if not missing:
        return settings, sources
    path = prepare_data_dir(settings) / SECRETS_FILE
    stored = _read(path)
    if not all(name in stored for name in missing):
        fresh = {name: secrets.token_urlsafe(32) for name in SECRET_FIELDS}
        if path.exists():  # an older file without one of the tokens: keep what it has
            merged = {**fresh, **stored}
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            _create(tmp, merged)
            os.replace(tmp, path)
            new = {n for n in missing if n not in stored}
        else:
            new = set(missing) if _create(path, fresh) else set()
        stored = _read(path)
    else:
        new = set()
    for name in missing:
        sources[name] = "generated" if name in new else "stored"
    return settings.model_copy(update={name: stored[name] for name in missing}), sources


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, *, host: str) -> None:
    """Refuse weak tokens (default or short) when the server listens beyond loopback.

    Raises:
        UsageError: ``host`` is not loopback and a configured token is weak.
    """
    weak = settings.weak_secrets()
    if not weak or is_loopback(host):
        return
    problems = "; ".join(f"the {name} is {problem}" for name, problem in weak.items())
    names = " and ".join(f"LITESHIP_{name.upper()}" for name in weak)
    raise UsageError(
        f"refusing to listen on {host} with weak tokens: {problems}. Anyone who can reach the server "
        "could publish models or enroll devices.",
        hint=f"Unset {names} so the server generates random tokens, or set long random values; "
        "weak tokens are accepted only on a loopback `host`.",
    )
