"""Build a signed, versioned package from a .tflite: :func:`build_package`."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship._fs import write_atomic
from liteship.errors import LiteshipError, PackageError
from liteship.model.flatbuffer import load_model, metadata_entries, read_liteship_info
from liteship.model.metadata import labels_from_metadata
from liteship.package.archive import check_member_name, write_archive
from liteship.package.golden import (
    GoldenLike,
    golden_feeds,
    golden_npz,
    latency_budget,
    run_golden,
    tolerance,
)
from liteship.package.manifest import (
    GOLDEN_NAME,
    LABELS_NAME,
    MANIFEST_NAME,
    MODEL_NAME,
    SIGNATURE_NAME,
    FileEntry,
    Manifest,
    canonical_json,
    check_model_id,
    histogram_dict,
)
from liteship.package.semver import parse_semver
from liteship.package.signing import KeyLike, key_id, load_private_key, sign
from liteship.package.variants import Variant
from liteship.runtime.litert import LiteRTRunner
from liteship.types import ReportMixin, to_jsonable

SUFFIX = ".lsp"


@dataclass(frozen=True)
class PackageInfo(ReportMixin):
    """What :func:`build_package` wrote: the archive's path, sha256 and size, and its manifest."""

    path: str
    sha256: str
    size: int
    manifest: Manifest

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "manifest": self.manifest.to_dict(),
        }


def build_package(
    model: str | os.PathLike | bytes,
    output: str | os.PathLike,
    *,
    model_id: str,
    version: str,
    private_key: KeyLike,
    recipe: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    reference_histogram: Any = None,
    reference_data: Any = None,
    golden_inputs: GoldenLike | None = None,
    golden_outputs: Mapping[str, np.ndarray] | None = None,
    golden_tolerance: float | Sequence[float] | Mapping[str, float] | None = None,
    latency_budget_ms: float | None = None,
    calibration_range: Sequence[float] | Mapping[str, float] | None = None,
    labels: Sequence[str] | str | os.PathLike | None = None,
    extra_files: Mapping[str, bytes | str | os.PathLike] | None = None,
    description: str | None = None,
    created: str | dt.datetime | None = None,
    overwrite: bool = True,
    variant: Variant | None = None,
) -> PackageInfo:
    """Package a .tflite with its manifest and golden samples, signed with ed25519.

    The same inputs (and ``created`` time) always give the same bytes.

    Args:
        model: Path to the ``.tflite`` or its bytes.
        output: A folder (the file is named ``<model_id>-<version>.lsp``) or a file path with a suffix.
        model_id: Lower-case id, e.g. ``"digits"``.
        version: Semantic version ``MAJOR.MINOR.PATCH[-pre]``.
        private_key: ed25519 private key (PEM path, PEM bytes or key object).
        recipe: The conversion recipe. Defaults to the one recorded in the model by liteship, if any.
        metrics: Free-form metrics (validation, benchmark) to record.
        reference_histogram: Output-confidence histogram from validation, ``{"bins", "counts"}``.
        reference_data: Validation data (``.npz``, ``.npy``, image folder or array) to compute the
            reference histogram from (:func:`~liteship.package.reference.reference_histogram`), when
            ``reference_histogram`` is not given. Defaults to None (no reference: drift cannot be judged).
        golden_inputs: Smoke-test inputs (see :func:`~liteship.package.golden.golden_feeds`). Defaults
            to 4 seeded random samples within the calibration range.
        golden_outputs: ``{output name: (N, ...)}`` expected outputs. Defaults to running the model
            with LiteRT on the golden inputs.
        golden_tolerance: ``atol``, ``(atol, rtol)`` or a dict. Defaults to 1e-3 each, widened to two
            quantization steps for quantized outputs.
        latency_budget_ms: Median latency the device's smoke test allows. Defaults to no limit.
        calibration_range: ``(min, max)`` of calibration inputs. Defaults to the model's record.
        labels: Class labels (list or a file), stored as ``labels.txt``. Defaults to the labels in
            the model's TFLite metadata, if any.
        extra_files: ``{name in package: bytes or path}``.
        description: Free text.
        created: Creation time. Defaults to ``$SOURCE_DATE_EPOCH`` when set, else now (UTC).
        overwrite: Replace an existing package file (it keeps its mode). ``False`` refuses, before any
            work is done. Defaults to ``True``: a package is rebuilt from its inputs (the pipeline does).
        variant: The hardware this package is for, as one variant of a multi-variant release
            (:mod:`liteship.package.variants`); signed in the manifest's ``variant``. A folder
            ``output`` names the file ``<model_id>-<version>.<variant>.lsp``. Defaults to None.

    Returns:
        A :class:`PackageInfo`.

    Raises:
        PackageError: Bad id, version, histogram, golden data (e.g. NaN), or file names; the output
            exists and ``overwrite`` is false.
        SignatureError: The key cannot be used for signing.
        ModelError: The model cannot be read or loaded by LiteRT.
    """
    check_model_id(model_id)
    parse_semver(version)
    latency_budget_ms = latency_budget(latency_budget_ms)
    path = _output_path(Path(output), model_id, version, variant.name if variant is not None else None)
    if not overwrite and path.exists():
        raise PackageError(
            f"{str(path)!r} already exists; refusing to overwrite a package.",
            hint="Choose another output, or pass overwrite=True if you mean to replace it.",
        )
    key = load_private_key(private_key)
    loaded = load_model(model if isinstance(model, bytes) else Path(model))
    info = read_liteship_info(loaded)
    calib = _range(calibration_range if calibration_range is not None else info.get("calibration_range"))
    with LiteRTRunner(loaded.data, num_threads=1) as runner:
        in_specs, out_specs, backend = runner.input_specs, runner.output_specs, runner.backend
        feeds = golden_feeds(golden_inputs, in_specs, (calib["min"], calib["max"]) if calib else None)
        expected = run_golden(runner, feeds)[0] if golden_outputs is None else dict(golden_outputs)
    expected = _check_outputs(expected, [s.name for s in out_specs], len(next(iter(feeds.values()))))
    if reference_histogram is None and reference_data is not None:
        from liteship.package.reference import reference_histogram as compute_reference

        reference_histogram = compute_reference(loaded.data, reference_data)
    if labels is None:
        labels = _metadata_labels(loaded.data)
    atol, rtol = tolerance(golden_tolerance, out_specs)
    files = {MODEL_NAME: loaded.data, GOLDEN_NAME: golden_npz(feeds, expected)}
    if labels is not None:
        files[LABELS_NAME] = _labels_bytes(labels)
    for name, content in (extra_files or {}).items():
        if name in files or name in (MANIFEST_NAME, SIGNATURE_NAME):
            raise PackageError(f"extra file name {name!r} is reserved by the package format.")
        files[check_member_name(name)] = content if isinstance(content, bytes) else Path(content).read_bytes()
    manifest = Manifest(
        model_id=model_id,
        version=version,
        created=_created(created),
        key_id=key_id(key.public_key()),
        files={n: FileEntry(hashlib.sha256(b).hexdigest(), len(b)) for n, b in files.items()},
        model={
            "file": MODEL_NAME,
            "inputs": to_jsonable(in_specs),
            "outputs": to_jsonable(out_specs),
            "preprocessing": info.get("preprocessing"),
            "labels": LABELS_NAME if labels is not None else None,
        },
        runtime=_runtime(loaded.model, backend),
        golden={
            "file": GOLDEN_NAME,
            "count": len(next(iter(feeds.values()))),
            "inputs": [s.name for s in in_specs],
            "outputs": [s.name for s in out_specs],
            "atol": atol,
            "rtol": rtol,
            "latency_budget_ms": latency_budget_ms,
            "source": "synthetic" if golden_inputs is None else "given",
        },
        recipe=recipe if recipe is not None else info.get("recipe"),
        metrics=to_jsonable(dict(metrics or {})),
        reference_histogram=histogram_dict(reference_histogram),
        calibration_range=calib,
        description=description,
        variant=None if variant is None else Variant.from_dict(variant.to_dict()).to_dict(),
    )
    manifest_bytes = manifest.canonical_bytes()
    signature = {"algorithm": "ed25519", "key_id": manifest.key_id, "signature": sign(key, manifest_bytes)}
    data = write_archive({**files, MANIFEST_NAME: manifest_bytes, SIGNATURE_NAME: canonical_json(signature)})
    _write_atomic(path, data)
    return PackageInfo(str(path), hashlib.sha256(data).hexdigest(), len(data), manifest)


def _check_outputs(expected: dict[str, Any], names: list[str], count: int) -> dict[str, np.ndarray]:
    """Expected outputs in the model's output order; refused when misnamed, miscounted or non-finite."""
    if sorted(expected) != sorted(names):
        raise PackageError(f"golden outputs are named {sorted(expected)}; the model's outputs are {names}.")
    for name in names:
        arr = np.asarray(expected[name])
        if len(arr) != count:
            raise PackageError(f"golden output {name!r} has {len(arr)} samples; the inputs have {count}.")
        if not np.all(np.isfinite(arr)):
            raise PackageError(
                f"the expected golden output {name!r} contains NaN or Inf; refusing to package a model "
                "whose smoke test cannot pass.",
                hint="Check the model with `liteship run` on these inputs, or re-convert it.",
            )
    return {name: np.asarray(expected[name]) for name in names}


def _range(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    lo, hi = (value["min"], value["max"]) if isinstance(value, Mapping) else tuple(value)
    if not float(lo) <= float(hi):
        raise PackageError(f"calibration_range min {lo} is greater than max {hi}.")
    return {"min": float(lo), "max": float(hi)}


def _runtime(model: Any, backend: str) -> dict[str, Any]:
    codes = [c.customCode for c in model.operatorCodes or [] if c.customCode]
    codes = [c.decode() if isinstance(c, bytes) else str(c) for c in codes]
    min_version = metadata_entries(model).get("min_runtime_version", b"").rstrip(b"\0").decode() or None
    name, _, ver = backend.partition(" ")
    major_minor = ".".join(ver.split(".")[:2]) if ver[:1].isdigit() else ""
    return {
        "requires": [
            f"ai-edge-litert>={major_minor}" if name == "ai-edge-litert" and major_minor else "ai-edge-litert"
        ],
        "needs_flex": any(c.startswith("Flex") for c in codes),
        "custom_ops": sorted(c for c in codes if not c.startswith("Flex")),
        "min_runtime_version": min_version,
        "built_with": backend,
    }


def _metadata_labels(data: bytes) -> list[str] | None:
    """The labels zipped into the model's metadata (kept in the package), or None."""
    try:
        return labels_from_metadata(data) or None
    except LiteshipError:  # metadata naming a missing label file: package without labels
        return None


def _labels_bytes(labels: Sequence[str] | str | os.PathLike) -> bytes:
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        if not path.is_file():
            raise PackageError(f"labels file {str(path)!r} does not exist.")
        return path.read_bytes()
    return "".join(f"{label}\n" for label in labels).encode("utf-8")


def _created(value: str | dt.datetime | None) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        value = (
            dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
            if epoch
            else dt.datetime.now(dt.timezone.utc)
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _output_path(output: Path, model_id: str, version: str, variant: str | None = None) -> Path:
    if output.is_dir() or not output.suffix:
        return output / f"{model_id}-{version}{'.' + variant if variant else ''}{SUFFIX}"
    return output


def _write_atomic(path: Path, data: bytes) -> None:
    """Write the package atomically: readers never see half a package."""
    try:
        write_atomic(path, data)
    except OSError as e:
        raise PackageError(f"cannot write package {str(path)!r}: {e.strerror or e}.") from e


__all__ = ["build_package", "PackageInfo", "SUFFIX"]
