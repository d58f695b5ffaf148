"""Variants of one release: which hardware a package is for (issue 24).

A release (one model id and version) may hold several signed packages, its *variants*, e.g. an int8
build for CPUs with dotprod/VNNI and a float build for the others. Each variant's manifest carries
(signed, so neither a server nor a mirror can change it)::

    "variant": {"name": "int8-vnni", "default": false,
                "when": [{"machine": ["x86_64"], "isa": ["avx512_vnni"]}]}

``when`` is a list of conditions, any of which selects the variant; a condition holds when every field
it names holds for the device profile (``liteship.agent.profile.device_profile``):

- ``machine``: the profile's ``machine`` is one of these (``arm64`` = ``aarch64``, ``amd64`` = ``x86_64``);
- ``isa``: every listed ISA feature is in the profile's ``isa``;
- ``accelerator``: the profile lists it in ``accelerators`` (or runs on it: ``accelerator``);
- ``litert_min`` / ``litert_below``: the profile's LiteRT version is ≥ min and < below.

Exactly one variant of a release is the ``default``: a device no condition selects runs it.
:func:`choose` is the rule the server applies at check-in (pure, no database): the matching variant
with the most specific condition, ties broken by name; else the default.

No TensorFlow here (the device side imports this module).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from liteship.errors import PackageError

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,47}$")
MAX_CONDITIONS = 16
_MACHINE_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}
_KEYS = ("machine", "isa", "accelerator", "litert_min", "litert_below")


def _machine(text: str) -> str:
    t = text.strip().lower()
    return _MACHINE_ALIASES.get(t, t)


def _version_key(text: str) -> tuple[int, ...] | None:
    """``"2.3.0"`` → ``(2, 3, 0)``; the leading numeric parts of a version (None when there are none)."""
    parts = []
    for piece in re.split(r"[.+-]", str(text)):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts) or None


@dataclass(frozen=True)
class Condition:
    """One hardware condition (every field given must hold; an empty condition holds for any device)."""

    machine: tuple[str, ...] = ()
    isa: tuple[str, ...] = ()
    accelerator: str | None = None
    litert_min: str | None = None
    litert_below: str | None = None

    @property
    def specificity(self) -> int:
        """How many things it checks: the more specific of two matching variants wins."""
        return (
            bool(self.machine)
            + len(self.isa)
            + (self.accelerator is not None)
            + (self.litert_min is not None)
            + (self.litert_below is not None)
        )

    def holds(self, profile: Mapping[str, Any]) -> bool:
        if self.machine and _machine(str(profile.get("machine") or "")) not in {
            _machine(m) for m in self.machine
        }:
            return False
        isa = profile.get("isa")
        have = {str(f).lower() for f in isa} if isinstance(isa, list) else set()
        if any(f.lower() not in have for f in self.isa):
            return False
        if self.accelerator is not None:
            accels = profile.get("accelerators")
            listed = {str(a).lower() for a in accels} if isinstance(accels, list) else set()
            listed.add(str(profile.get("accelerator") or "").lower())
            if self.accelerator.lower() not in listed:
                return False
        if self.litert_min is not None or self.litert_below is not None:
            have_v = _version_key(str(profile.get("litert") or ""))
            if have_v is None:
                return False
            low = _version_key(self.litert_min) if self.litert_min else None
            high = _version_key(self.litert_below) if self.litert_below else None
            if (low is not None and have_v < low) or (high is not None and have_v >= high):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.machine:
            out["machine"] = list(self.machine)
        if self.isa:
            out["isa"] = list(self.isa)
        for key in ("accelerator", "litert_min", "litert_below"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def describe(self) -> str:
        parts = []
        if self.machine:
            parts.append("machine " + "|".join(self.machine))
        parts += list(self.isa)
        if self.accelerator:
            parts.append(f"accelerator {self.accelerator}")
        if self.litert_min:
            parts.append(f"litert ≥ {self.litert_min}")
        if self.litert_below:
            parts.append(f"litert < {self.litert_below}")
        return " + ".join(parts) or "any device"

    @classmethod
    def from_dict(cls, raw: Any, where: str = "condition") -> Condition:
        if not isinstance(raw, dict):
            raise PackageError(
                f"{where} must be an object with {', '.join(_KEYS)}; got {type(raw).__name__}."
            )
        unknown = sorted(set(raw) - set(_KEYS))
        if unknown:
            raise PackageError(f"{where} has unknown keys {unknown}; expected some of {list(_KEYS)}.")

        def strings(key: str) -> tuple[str, ...]:
            value = raw.get(key, [])
            value = [value] if isinstance(value, str) else value
            ok = isinstance(value, list) and len(value) <= 32
            if not ok or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value):
                raise PackageError(f"{where}.{key} must be a list of short strings, got {value!r:.80}.")
            return tuple(value)

        def text(key: str) -> str | None:
            value = raw.get(key)
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 64):
                raise PackageError(f"{where}.{key} must be a short string, got {value!r:.80}.")
            if value is not None and key.startswith("litert") and _version_key(value) is None:
                raise PackageError(f"{where}.{key} must be a version such as '1.4.0', got {value!r:.80}.")
            return value

        return cls(
            machine=strings("machine"),
            isa=strings("isa"),
            accelerator=text("accelerator"),
            litert_min=text("litert_min"),
            litert_below=text("litert_below"),
        )


@dataclass(frozen=True)
class Variant:
    """A release variant: its name, the conditions that select it, and whether it is the default."""

    name: str
    when: tuple[Condition, ...] = ()
    default: bool = False

    def matches(self, profile: Mapping[str, Any]) -> bool:
        """Whether a condition selects this variant for ``profile`` (the default alone does not)."""
        return any(c.holds(profile) for c in self.when)

    def specificity(self, profile: Mapping[str, Any]) -> int:
        return max((c.specificity for c in self.when if c.holds(profile)), default=-1)

    def describe(self) -> str:
        text = " or ".join(c.describe() for c in self.when) if self.when else "no condition"
        return f"{text}{' (default)' if self.default else ''}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "default": self.default, "when": [c.to_dict() for c in self.when]}

    @classmethod
    def from_dict(cls, raw: Any) -> Variant:
        """Schema-check a manifest's ``variant`` object.

        Raises:
            PackageError: naming the bad field and what is expected.
        """
        if not isinstance(raw, dict):
            raise PackageError(
                f"'variant' must be an object {{name, default, when}}; got {type(raw).__name__}."
            )
        name = raw.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise PackageError(
                f"variant name {name!r:.80} is not valid; expected 1-48 characters of a-z, 0-9, '.', '_', '-'."
            )
        default = raw.get("default", False)
        if not isinstance(default, bool):
            raise PackageError(f"variant {name}: 'default' must be true or false.")
        when = raw.get("when", [])
        if not isinstance(when, list) or len(when) > MAX_CONDITIONS:
            raise PackageError(
                f"variant {name}: 'when' must be a list of at most {MAX_CONDITIONS} conditions."
            )
        conditions = tuple(Condition.from_dict(c, f"variant {name}: when[{i}]") for i, c in enumerate(when))
        if not conditions and not default:
            raise PackageError(
                f"variant {name} has no condition and is not the default: no device would ever run it.",
                hint="Give it conditions (--when machine=aarch64,isa=dotprod) or make it the default.",
            )
        return cls(name=name, when=conditions, default=default)


def parse_when(text: str) -> Condition:
    """``"machine=aarch64,isa=neon+dotprod,litert_min=1.4"`` → a :class:`Condition` (the CLI's ``--when``).

    Raises:
        PackageError: an unknown key or a malformed pair.
    """
    raw: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise PackageError(
                f"--when {text!r}: {pair!r} is not KEY=VALUE.",
                hint="For example --when machine=x86_64,isa=avx512_vnni (isa features joined by '+').",
            )
        if key not in _KEYS:
            raise PackageError(f"--when {text!r}: unknown key {key!r}; expected one of {', '.join(_KEYS)}.")
        if key in ("machine", "isa"):
            raw[key] = [v for v in value.strip().split("+") if v]
        else:
            raw[key] = value.strip()
    return Condition.from_dict(raw, f"--when {text!r}")


def condition_of_group(group: str) -> Condition:
    """The condition of a hardware group named by ``liteship.fleet.jobs.profile_group``
    (``"x86_64+avx512_vnni"`` → machine x86_64 with avx512_vnni)."""
    machine, *features = group.split("+")
    return Condition(machine=() if machine in ("", "unknown") else (machine,), isa=tuple(features))


def choose(variants: Iterable[Variant], profile: Mapping[str, Any] | None) -> Variant | None:
    """The variant for a device profile: the matching one with the most specific condition (ties: by
    name), else the default (None when there is neither)."""
    items = list(variants)
    prof = profile or {}
    matching = [v for v in items if v.matches(prof)]
    if matching:
        return sorted(matching, key=lambda v: (-v.specificity(prof), v.name))[0]
    return next((v for v in items if v.default), None)


def check_set(variants: Sequence[Variant]) -> None:
    """A release's variants: distinct names and exactly one default.

    Raises:
        PackageError: a name twice, no default, or several.
    """
    names = [v.name for v in variants]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PackageError(f"variant names must be distinct; {twice} appear more than once.")
    defaults = [v.name for v in variants if v.default]
    if len(defaults) != 1:
        raise PackageError(
            f"a release needs exactly one default variant; it has {len(defaults)} ({defaults}).",
            hint="Mark the variant devices fall back to with --default-variant.",
        )


__all__ = [
    "Condition",
    "Variant",
    "check_set",
    "choose",
    "condition_of_group",
    "parse_when",
]
