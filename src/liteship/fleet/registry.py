"""Publishing: verify an uploaded package against the trusted publisher keys (no database access)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from liteship.errors import PackageError


def manifest_dict(manifest: Any) -> dict[str, Any]:
    """A manifest (the package module's record, a dataclass or a mapping) as a plain dict."""
    if hasattr(manifest, "to_dict"):
        return dict(manifest.to_dict())
    if is_dataclass(manifest) and not isinstance(manifest, type):
        return asdict(manifest)
    return dict(manifest)


def verify_package_file(
    *,
    path: Path,
    trusted_keys: list[str],
    verify: Callable[[Path, Any], Any] | None = None,
    display_name: str | None = None,
) -> dict[str, Any]:
    """Verify a package with the first trusted key that accepts it; return its manifest as a dict.

    Args:
        path: the package on the server's disk (a temporary file while publishing).
        trusted_keys: publisher public keys.
        verify: replaces ``liteship.package.verify_package`` (tests).
        display_name: how messages name the package (the uploaded file's name), instead of ``path``.

    Raises:
        PackageError: unsigned, tampered, or signed by no trusted key (or none is configured).
    """
    if not trusted_keys:
        raise PackageError(
            "the server has no trusted publisher key (`trusted_keys`), so no package can be accepted.",
            hint="Restart it with the publisher's public key (LITESHIP_TRUSTED_KEYS).",
        )
    if verify is None:
        from liteship.package import verify_package

        verify = verify_package
    name = display_name or path.name
    errors = []
    for key in trusted_keys:
        try:
            return manifest_dict(verify(path, key))
        except (PackageError, ValueError, RecursionError) as e:
            text = "the manifest is nested too deeply" if isinstance(e, RecursionError) else str(e)
            errors.append(text.replace(str(path), name).replace(path.name, name))
    raise PackageError(f"package {name!r} refused: {errors[-1]}")
