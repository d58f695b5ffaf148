"""Semantic versions for packages: ``MAJOR.MINOR.PATCH[-prerelease]``, ordered as semver.org §11.

The fleet server uses :func:`parse_semver` / :func:`compare_versions` to refuse a release that is not
greater than the latest one of the same model.

    >>> parse_semver("1.2.0-rc.1") < parse_semver("1.2.0")
    True
    >>> compare_versions("1.10.0", "1.9.3")
    1
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from liteship.errors import PackageError

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$"
)


@dataclass(frozen=True, order=False)
class SemVer:
    """A parsed version. Compare with ``<``, ``==``; ``str()`` gives the canonical text back."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    def _key(self) -> tuple:
        # A release sorts after all of its pre-releases; numeric identifiers sort before alphanumeric
        # ones and compare as numbers; a shorter list of identifiers sorts first when it is a prefix.
        if not self.prerelease:
            pre: tuple = (1,)
        else:
            pre = (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease))
        return (self.major, self.minor, self.patch, pre)

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __le__(self, other: SemVer) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: SemVer) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: SemVer) -> bool:
        return self._key() >= other._key()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return core + ("-" + ".".join(self.prerelease) if self.prerelease else "")


def parse_semver(text: str) -> SemVer:
    """Parse ``MAJOR.MINOR.PATCH`` with an optional ``-prerelease`` (e.g. ``1.4.0-rc.2``).

    Args:
        text: The version string.

    Returns:
        The parsed :class:`SemVer`.

    Raises:
        PackageError: The text is not such a version (build metadata ``+…`` is not accepted either,
            since it would give two packages the same precedence).
    """
    m = _SEMVER.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise PackageError(
            f"version {text!r} is not a semantic version MAJOR.MINOR.PATCH[-prerelease].",
            hint="Use e.g. '1.2.0' or '1.3.0-rc.1' (no leading zeros, no '+build' suffix).",
        )
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    return SemVer(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre)


def compare_versions(a: str | SemVer, b: str | SemVer) -> int:
    """Return -1, 0 or 1 as version ``a`` is lower than, equal to or greater than ``b``."""
    va = a if isinstance(a, SemVer) else parse_semver(a)
    vb = b if isinstance(b, SemVer) else parse_semver(b)
    return (va > vb) - (va < vb)


__all__ = ["SemVer", "parse_semver", "compare_versions"]
