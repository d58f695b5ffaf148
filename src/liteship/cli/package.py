"""``liteship keygen | package | verify``: signing keys, signed packages, verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from liteship.cli._common import ExistingPath, FiniteRange, console, emit_json, json_option
from liteship.errors import LiteshipError, UsageError
from liteship.package import build_package, generate_keypair, verify_package
from liteship.package.golden import MAX_LATENCY_BUDGET_MS, MAX_TOLERANCE
from liteship.package.variants import Variant, parse_when

if TYPE_CHECKING:
    from liteship.package.variants import Variant

# Library messages name parameters; users of these commands know the flags.
_FLAGS = (
    ("pass overwrite=True", "pass --force"),
    ("overwrite=True", "--force"),
    ("golden_inputs", "--golden"),
    ("reference_histogram computed by `liteship validate`", "--reference-data with a one-input model"),
    ("latency_budget_ms", "--latency-budget-ms"),
    ("public_key=", "--key"),
    ("private_key", "--key"),
)


def _as_flags(e: LiteshipError) -> None:
    """Rewrite ``e``'s message and hint in terms of this command's flags."""

    def sub(text: str | None) -> str | None:
        if text is None:
            return None
        for param, flag in _FLAGS:
            text = text.replace(param, flag)
        return text

    e.message, e.hint = sub(e.message) or "", sub(e.hint)
    e.args = (e.message if not e.hint else f"{e.message} {e.hint}",)


@click.command("keygen")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Key path prefix: writes PREFIX.key (private, mode 0600) and PREFIX.pub.",
)
@click.option("--force", is_flag=True, help="Replace existing key files.")
@json_option
def keygen_cmd(output: str, force: bool, as_json: bool) -> None:
    """Create an ed25519 key pair for signing packages."""
    prefix = Path(output)
    private = prefix if prefix.suffix == ".key" else prefix.with_name(prefix.name + ".key")
    try:
        keys = generate_keypair(private, private.with_suffix(".pub"), overwrite=force)
    except LiteshipError as e:
        _as_flags(e)
        raise
    if as_json:
        emit_json(keys)
        return
    console.print(
        f"private key: {keys.private_path}  (keep it secret; sign packages with it)",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"public key:  {keys.public_path}  (give it to servers and devices)", markup=False, soft_wrap=True
    )
    console.print(f"key id:      {keys.key_id}", markup=False, soft_wrap=True)


def _read_metrics(path: str | None) -> dict | None:
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"metrics file {path!r} is not readable JSON ({e}).") from e
    if not isinstance(data, dict):
        raise UsageError(f"metrics file {path!r} must hold a JSON object.")
    return data


@click.command("package")
@click.argument("model", type=ExistingPath(dir_okay=False))
@click.option("--id", "model_id", required=True, help="Model id, e.g. digits (a-z 0-9 . _ -).")
@click.option("--version", "version", required=True, help="Semantic version, e.g. 1.2.0.")
@click.option(
    "--key", required=True, type=click.Path(dir_okay=False), help="Private key (.key) to sign with."
)
@click.option("--golden", type=ExistingPath(dir_okay=False), help="Golden inputs (.npy/.npz).")
@click.option("--metrics", type=ExistingPath(dir_okay=False), help="Metrics to record (JSON).")
@click.option("--recipe", help="Conversion recipe to record (defaults to the model's own record).")
@click.option(
    "--labels",
    type=ExistingPath(dir_okay=False),
    help="Labels file, one per line. Defaults to the labels in the model's metadata.",
)
@click.option(
    "--reference-data",
    type=ExistingPath(),
    help="Validation data (.npz with x[,y], .npy or an image folder): the model's confidence histogram "
    "over it becomes the fleet's drift reference. Without it, drift shows no-reference.",
)
@click.option("--description", help="Free text.")
@click.option(
    "--latency-budget-ms",
    type=FiniteRange(0, MAX_LATENCY_BUDGET_MS, min_open=True),
    help="Median latency the device smoke test allows (ms, above 0).",
)
@click.option(
    "--atol", type=FiniteRange(0, MAX_TOLERANCE), help="Absolute tolerance of the golden outputs (≥ 0)."
)
@click.option(
    "--rtol", type=FiniteRange(0, MAX_TOLERANCE), help="Relative tolerance of the golden outputs (≥ 0)."
)
@click.option("-o", "--output", default=".", show_default=True, help="Output folder or .lsp file.")
@click.option("--force", is_flag=True, help="Replace an existing package file.")
@click.option(
    "--variant",
    "variant_name",
    help="Package one variant of a multi-variant release (e.g. int8-vnni): the fleet gives it to the "
    "devices --when selects. A folder output names the file <id>-<version>.<variant>.lsp.",
)
@click.option(
    "--when",
    "when",
    multiple=True,
    help="With --variant: the devices it is for, KEY=VALUE[,…] with machine, isa (features joined by "
    "'+'), accelerator, litert_min, litert_below; repeat for any-of. E.g. machine=x86_64,isa=avx512_vnni.",
)
@click.option(
    "--default-variant",
    is_flag=True,
    help="With --variant: the release's default (devices no other variant's --when selects run it).",
)
@json_option
def package_cmd(
    model: str,
    model_id: str,
    version: str,
    key: str,
    golden: str | None,
    metrics: str | None,
    recipe: str | None,
    labels: str | None,
    reference_data: str | None,
    description: str | None,
    latency_budget_ms: float | None,
    atol: float | None,
    rtol: float | None,
    output: str,
    force: bool,
    variant_name: str | None,
    when: tuple[str, ...],
    default_variant: bool,
    as_json: bool,
) -> None:
    """Build a signed, versioned package (.lsp) from a .tflite.

    An existing package file is not replaced unless --force is given. With --variant, the package is
    one variant of a release that holds several (one per kind of hardware; see docs/fleet.md).
    """
    variant = _variant(variant_name, when, default_variant)
    tol = {k: v for k, v in (("atol", atol), ("rtol", rtol)) if v is not None} or None
    try:
        info = build_package(
            model,
            output,
            model_id=model_id,
            version=version,
            private_key=key,
            recipe=recipe,
            metrics=_read_metrics(metrics),
            golden_inputs=golden,
            golden_tolerance=tol,
            latency_budget_ms=latency_budget_ms,
            labels=labels,
            reference_data=reference_data,
            description=description,
            overwrite=force,
            variant=variant,
        )
    except LiteshipError as e:
        _as_flags(e)
        raise
    if as_json:
        emit_json(info)
        return
    m = info.manifest
    console.print(
        f"packaged {m.model_id} {m.version} → {info.path} ({info.size:,} bytes)", markup=False, soft_wrap=True
    )
    console.print(f"sha256 {info.sha256}  signed by key {m.key_id}", markup=False, soft_wrap=True)
    if variant is not None:
        console.print(f"variant {variant.name}: {variant.describe()}", markup=False, soft_wrap=True)
    ref = m.reference_histogram
    console.print(
        f"drift reference: {sum(ref['counts'])} samples"
        if ref
        else "drift reference: none (--reference-data)",
        markup=False,
        soft_wrap=True,
    )


def _variant(name: str | None, when: tuple[str, ...], default: bool) -> Variant | None:
    """The ``--variant`` / ``--when`` / ``--default-variant`` flags as a checked variant (usage error
    when they do not fit together)."""
    if name is None:
        if when or default:
            raise click.UsageError("--when and --default-variant describe a variant: add --variant NAME.")
        return None
    try:
        return Variant.from_dict(
            {"name": name, "default": default, "when": [parse_when(w).to_dict() for w in when]}
        )
    except LiteshipError as e:
        raise click.UsageError(str(e)) from None


@click.command("verify")
@click.argument("package", type=click.Path(dir_okay=False))
@click.option(
    "--key", required=True, type=click.Path(dir_okay=False), help="Public key (.pub) of the signer."
)
@json_option
def verify_cmd(package: str, key: str, as_json: bool) -> None:
    """Verify a package's signature and every file's hash (exit 1 if anything differs)."""
    m = verify_package(package, key)
    if as_json:
        emit_json({"verified": True, "path": package, "manifest": m.to_dict()})
        return
    console.print(
        f"verified: {m.model_id} {m.version}, signed by key {m.key_id}, {len(m.files)} files intact "
        f"(created {m.created})",
        markup=False,
        soft_wrap=True,
    )


cli = click.Group("package", commands=[keygen_cmd, package_cmd, verify_cmd])

__all__ = ["keygen_cmd", "package_cmd", "verify_cmd", "cli"]
