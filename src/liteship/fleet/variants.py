"""Multi-variant releases on the server (issue 24): record a variant package, list a release's variants,
and pick the variant a device profile gets.

A release (model id + version) is created by its **default** variant's package; its other variants
are added to it by publishing their packages (same model id and version, another variant name). The
``releases`` row keeps the default's target (so every reader that knows only releases still serves a
valid package); ``release_variants`` holds every variant with its conditions and TUF target. Which
variant a device gets is :func:`liteship.package.variants.choose` on the profile it reports at
check-in. A release published without a ``variant`` in its manifest has no rows here and works as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from liteship.errors import FleetError, PackageError, VariantConflict
from liteship.fleet.models import Release, ReleaseVariant
from liteship.package.variants import Variant, choose


@dataclass(frozen=True)
class VariantRef:
    """One variant as the check-in path needs it: its rule and its TUF target."""

    variant: Variant
    target_path: str
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return self.variant.name


def target_path(model_id: str, version: str, name: str | None) -> str:
    """The TUF target of a package: ``model/version/model-version[.variant].lsp``."""
    return f"{model_id}/{version}/{model_id}-{version}{'.' + name if name else ''}.lsp"


def variant_of(manifest: Mapping[str, Any]) -> Variant | None:
    """The manifest's ``variant`` (already checked by the package verifier), parsed.

    Raises:
        FleetError: it does not parse (a package made by another tool).
    """
    raw = manifest.get("variant")
    if raw is None:
        return None
    try:
        return Variant.from_dict(raw)
    except PackageError as e:
        raise FleetError(f"the package's variant is not valid: {e}") from None


def variants_of(session: Session, release_ids: list[int]) -> dict[int, list[ReleaseVariant]]:
    """The variant rows of these releases (by release id, in publishing order)."""
    if not release_ids:
        return {}
    rows = session.scalars(
        select(ReleaseVariant).where(ReleaseVariant.release_id.in_(release_ids)).order_by(ReleaseVariant.id)
    ).all()
    out: dict[int, list[ReleaseVariant]] = {}
    for row in rows:
        out.setdefault(row.release_id, []).append(row)
    return out


def refs(rows: list[ReleaseVariant]) -> tuple[VariantRef, ...]:
    return tuple(
        VariantRef(
            Variant.from_dict({"name": r.name, "default": r.is_default, "when": r.when}),
            r.target_path,
            r.sha256,
            r.size,
        )
        for r in rows
    )


def pick(variants: tuple[VariantRef, ...], profile: Mapping[str, Any] | None) -> VariantRef | None:
    """The variant of a release a device with ``profile`` gets (None when the release has none)."""
    if not variants:
        return None
    chosen = choose((v.variant for v in variants), profile)
    return next((v for v in variants if chosen is not None and v.name == chosen.name), None)


def new_release_row(
    *, model_id: str, version: str, variant: Variant | None, sha256: str, size: int, manifest: dict[str, Any]
) -> Release:
    """The ``releases`` row of a new release (a variant release starts with its default variant).

    Raises:
        VariantConflict: the first variant published is not the default.
    """
    if variant is not None and not variant.default:
        raise VariantConflict(
            f"{model_id} {version} does not exist yet, and variant {variant.name!r} is not its default: a "
            "release is created by its default variant.",
            hint="Publish the default variant's package first (`liteship fleet publish` orders them).",
        )
    return Release(
        model_id=model_id,
        version=version,
        sha256=sha256,
        size=size,
        target_path=target_path(model_id, version, variant.name if variant else None),
        manifest=manifest,
    )


def add_variant(
    session: Session, *, release: Release, variant: Variant, sha256: str, size: int, manifest: dict[str, Any]
) -> ReleaseVariant:
    """Record one variant package of ``release`` (flushes).

    Raises:
        VariantConflict: the release was published without variants, already has this variant, or
            already has a default.
    """
    existing = variants_of(session, [release.id]).get(release.id, [])
    where = f"{release.model_id} {release.version}"
    if not existing and release.manifest.get("variant") is None:
        raise VariantConflict(
            f"{where} was published without variants; variant {variant.name!r} cannot be added to it.",
            hint="Publish the variants under a new version.",
        )
    if any(r.name == variant.name for r in existing):
        raise VariantConflict(
            f"{where} already has a variant {variant.name!r}.",
            hint="Variants are immutable: publish a new version to change one.",
        )
    if variant.default and any(r.is_default for r in existing):
        default = next(r.name for r in existing if r.is_default)
        raise VariantConflict(f"{where} already has a default variant ({default!r}); a release has one.")
    row = ReleaseVariant(
        release_id=release.id,
        name=variant.name,
        is_default=variant.default,
        when=[c.to_dict() for c in variant.when],
        sha256=sha256,
        size=size,
        target_path=target_path(release.model_id, release.version, variant.name),
        manifest=manifest,
    )
    session.add(row)
    session.flush()
    return row


def all_variant_targets(session: Session) -> dict[str, tuple[str, int]]:
    """Every variant's TUF target: ``path → (sha256, size)``."""
    return {r.target_path: (r.sha256, r.size) for r in session.scalars(select(ReleaseVariant))}


__all__ = [
    "VariantConflict",
    "VariantRef",
    "add_variant",
    "all_variant_targets",
    "new_release_row",
    "pick",
    "refs",
    "target_path",
    "variant_of",
    "variants_of",
]
