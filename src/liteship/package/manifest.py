"""The package manifest: what a package holds, signed as canonical JSON.

Canonical bytes are ``json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
in UTF-8, no NaN; that exact text is stored as ``manifest.json`` and is what the ed25519 signature
covers. The schema (format ``liteship.package/1``)::

    format, model_id, version (semver), created (ISO 8601 UTC), description, key_id,
    files:      {name: {sha256, size}}          every member except manifest.json / signature.json
    model:      {file, inputs: [TensorSpec], outputs: [TensorSpec], preprocessing, labels}
    runtime:    {requires: ["ai-edge-litert>=2.3"], needs_flex, min_runtime_version}
    golden:     {file, count, inputs: [names], outputs: [names], atol, rtol, latency_budget_ms, source}
    recipe, metrics, reference_histogram: {bins (edges), counts}, calibration_range: {min, max}
    variant:    {name, default, when: [conditions]}   only in a variant of a multi-variant release
                                                       (``liteship.package.variants``)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from liteship.errors import PackageError
from liteship.package.semver import SemVer, parse_semver
from liteship.package.variants import Variant
from liteship.types import TensorSpec, to_jsonable

FORMAT = "liteship.package/1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "signature.json"
MODEL_NAME = "model.tflite"
GOLDEN_NAME = "golden.npz"
LABELS_NAME = "labels.txt"
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_MANIFEST_BYTES = 1024 * 1024  # a manifest with a long reference histogram is a few kB
MAX_MANIFEST_DEPTH = 32  # objects and arrays inside each other; liteship writes at most 5
_REQUIRED = ("format", "model_id", "version", "created", "key_id", "files", "model", "runtime", "golden")


_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(data: bytes, limit: int | None = None) -> int:
    """The deepest nesting of objects/arrays in JSON text, without parsing it (no recursion).

    Strings are skipped, so brackets inside them do not count. Malformed text gives some number; the
    parser reports the error after. With ``limit`` the answer only says whether the depth passes it:
    a number above ``limit`` if so (the scan stops there), else some number up to ``limit``.
    """
    opened = data.count(b"[") + data.count(b"{")
    if limit is not None and opened <= limit:
        return opened  # cannot nest deeper than it opens (an upper bound: brackets in strings count)
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(data):
        c = m.group()[:1]
        if c in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if limit is not None and deepest > limit:
                    break
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


@dataclass(frozen=True)
class FileEntry:
    """sha256 (hex) and size in bytes of one file of the package."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A parsed, schema-checked manifest. Build it with :func:`liteship.package.build_package`."""

    model_id: str
    version: str
    created: str
    key_id: str
    files: dict[str, FileEntry]
    model: dict[str, Any]
    runtime: dict[str, Any]
    golden: dict[str, Any]
    recipe: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    reference_histogram: dict[str, list] | None = None
    calibration_range: dict[str, float] | None = None
    description: str | None = None
    format: str = FORMAT
    # the hardware this package is for, when its release has several variants (issue 24); the key is
    # left out of manifest.json when None, so packages without variants keep their bytes
    variant: dict[str, Any] | None = None

    @property
    def variant_record(self) -> Variant | None:
        """The parsed ``variant`` (None: the package is its release's only build)."""
        return None if self.variant is None else Variant.from_dict(self.variant)

    @property
    def semver(self) -> SemVer:
        return parse_semver(self.version)

    @property
    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(**{**s, "shape": tuple(s["shape"])}) for s in self.model["inputs"]]

    @property
    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(**{**s, "shape": tuple(s["shape"])}) for s in self.model["outputs"]]

    def to_dict(self) -> dict[str, Any]:
        extra = {} if self.variant is None else {"variant": self.variant}
        return to_jsonable(
            {
                **extra,
                "format": self.format,
                "model_id": self.model_id,
                "version": self.version,
                "created": self.created,
                "description": self.description,
                "key_id": self.key_id,
                "files": {n: {"sha256": e.sha256, "size": e.size} for n, e in sorted(self.files.items())},
                "model": self.model,
                "runtime": self.runtime,
                "golden": self.golden,
                "recipe": self.recipe,
                "metrics": self.metrics,
                "reference_histogram": self.reference_histogram,
                "calibration_range": self.calibration_range,
            }
        )

    def canonical_bytes(self) -> bytes:
        """The exact bytes stored as ``manifest.json`` and signed."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse and schema-check ``manifest.json`` bytes.

        Raises:
            PackageError: over :data:`MAX_MANIFEST_BYTES`, nested deeper than
                :data:`MAX_MANIFEST_DEPTH`, not UTF-8 JSON, or not a liteship manifest.
        """
        if len(data) > MAX_MANIFEST_BYTES:
            raise PackageError(
                f"{MANIFEST_NAME} is {len(data)} bytes; at most {MAX_MANIFEST_BYTES} are accepted.",
                hint="This is not a package made by liteship; rebuild it with `liteship package`.",
            )
        if json_depth(data, MAX_MANIFEST_DEPTH) > MAX_MANIFEST_DEPTH:
            raise PackageError(
                f"{MANIFEST_NAME} nests objects/arrays more than {MAX_MANIFEST_DEPTH} levels deep; at "
                f"most {MAX_MANIFEST_DEPTH} are accepted.",
                hint="This is not a package made by liteship; rebuild it with `liteship package`.",
            )
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise PackageError(f"{MANIFEST_NAME} is not valid UTF-8 JSON ({type(e).__name__}).") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> Manifest:
        """Schema-check a manifest dict (unknown keys of the same format are ignored)."""
        if not isinstance(raw, dict):
            raise PackageError(f"{MANIFEST_NAME} must hold a JSON object, not {type(raw).__name__}.")
        if raw.get("format") != FORMAT:
            raise PackageError(
                f"package format {raw.get('format')!r} is not supported; this liteship reads {FORMAT!r}.",
                hint="Upgrade liteship on this machine, or rebuild the package with this version.",
            )
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise PackageError(f"{MANIFEST_NAME} lacks the keys {missing}; it was not made by liteship.")
        check_model_id(raw["model_id"])
        parse_semver(raw["version"])
        files = raw["files"]
        if not isinstance(files, dict) or MODEL_NAME not in files:
            raise PackageError(f"{MANIFEST_NAME} must list {MODEL_NAME!r} in 'files'.")
        entries = {}
        for name, e in files.items():
            ok = isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("size"), int)
            if not ok or len(e["sha256"]) != 64 or e["size"] < 0:
                raise PackageError(
                    f"{MANIFEST_NAME} entry for {name!r} must be {{sha256: hex64, size: int>=0}}."
                )
            entries[name] = FileEntry(e["sha256"], e["size"])
        for key in ("model", "runtime", "golden"):
            if not isinstance(raw[key], dict):
                raise PackageError(f"{MANIFEST_NAME} key {key!r} must be an object.")
        return cls(
            model_id=raw["model_id"],
            version=raw["version"],
            created=str(raw["created"]),
            key_id=str(raw["key_id"]),
            files=entries,
            model=raw["model"],
            runtime=raw["runtime"],
            golden=raw["golden"],
            recipe=raw.get("recipe"),
            metrics=raw.get("metrics") or {},
            reference_histogram=raw.get("reference_histogram"),
            calibration_range=raw.get("calibration_range"),
            description=raw.get("description"),
            variant=None if raw.get("variant") is None else Variant.from_dict(raw["variant"]).to_dict(),
        )


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; NaN refused (it has no JSON spelling)."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as e:
        raise PackageError(f"the manifest holds a value JSON cannot represent ({e}).") from e
    return text.encode("utf-8")


def check_model_id(model_id: Any) -> str:
    if not isinstance(model_id, str) or not MODEL_ID.match(model_id):
        raise PackageError(
            f"model id {model_id!r} is not valid: expected 1-64 of a-z 0-9 . _ - starting with a letter or digit.",
            hint="Use e.g. 'digits' or 'person-detector'.",
        )
    return model_id


def histogram_dict(hist: Any) -> dict[str, list] | None:
    """Normalize a reference histogram to ``{"bins": edges (n+1), "counts": n}``; ``None`` passes."""
    if hist is None:
        return None
    if isinstance(hist, dict):
        bins, counts = hist.get("bins", hist.get("edges")), hist.get("counts")
    elif isinstance(hist, (tuple, list)) and len(hist) == 2:
        counts, bins = hist  # numpy.histogram's order: (counts, edges)
    else:
        raise PackageError(
            "reference_histogram must be {'bins': edges, 'counts': counts} or (counts, edges)."
        )
    bins = [float(b) for b in to_jsonable(bins)]
    counts = [int(c) if float(c).is_integer() else float(c) for c in to_jsonable(counts)]
    if len(bins) != len(counts) + 1 or any(c < 0 for c in counts) or bins != sorted(bins):
        raise PackageError(
            f"reference_histogram has {len(bins)} bin edges and {len(counts)} counts; expected "
            "increasing edges, one more edge than counts, and counts >= 0."
        )
    return {"bins": bins, "counts": counts}


__all__ = [
    "FORMAT",
    "FileEntry",
    "Manifest",
    "canonical_json",
    "check_model_id",
    "histogram_dict",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "MODEL_NAME",
    "GOLDEN_NAME",
    "LABELS_NAME",
]
