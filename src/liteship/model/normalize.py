"""Normalize a .tflite from the wild once, on load, without changing what it computes.

Model zoos, MediaPipe and vendors ship flatbuffers written by older converters (TOCO, early MLIR). They
run in LiteRT, but tools that read the flatbuffer themselves trip over what the schema kept only for
compatibility:

- **op codes only in ``deprecated_builtin_code``** (``builtin_code`` 0, which is ``ADD``): the schema's
  own ``GetBuiltinCode`` takes the larger of the two; ai-edge-quantizer reads ``builtin_code`` alone and
  sees every op as ``ADD``. Both fields are set to the real code (the deprecated byte keeps
  ``PLACEHOLDER_FOR_GREATER_OP_CODES`` above 127, as the converter writes it).
- **no SignatureDefs**: ai-edge-quantizer calibrates through a signature. A ``serving_default`` signature
  of subgraph 0 is added, its inputs and outputs named after their tensors.
- **an appended zip of associated files** (TFLite Metadata's ``labels.txt``): kept, re-attached after
  every rewrite.
- **schema version and subgraphs**: recorded (control-flow bodies stay as they are; the signature is
  the main subgraph's).

Example:
    >>> data, record = normalize_model(open("model.tflite", "rb").read())  # doctest: +SKIP
    >>> record.describe()                                                    # doctest: +SKIP
    ['op codes of 5 operator types moved from deprecated_builtin_code to builtin_code', ...]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship.model import flatbuffer as fbm
from liteship.types import ReportMixin

SIGNATURE_KEY = "serving_default"
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127


@dataclass(frozen=True)
class SourceNormalization(ReportMixin):
    """What :func:`normalize_model` changed in a model (and what it kept).

    Attributes:
        op_codes_fixed: Operator codes (op types) whose ``builtin_code`` was taken from
            ``deprecated_builtin_code``; 0 when the file already had them.
        signature_added: The key of the signature added (``"serving_default"``), or ``None`` when the
            model had one.
        associated_files: Names of the files zipped onto the model, kept as they were.
        schema_version: The flatbuffer's ``Model.version`` (3 for every current file, TOCO's included).
        subgraphs: Number of subgraphs (more than one: control flow, or several signatures).
        producer: The model's ``description`` (the converter that wrote it, e.g. ``"TOCO Converted."``).
    """

    op_codes_fixed: int = 0
    signature_added: str | None = None
    associated_files: tuple[str, ...] = ()
    schema_version: int = 3
    subgraphs: int = 1
    producer: str = ""

    @property
    def changed(self) -> bool:
        """Whether the bytes differ from the file's: op codes moved or a signature added."""
        return bool(self.op_codes_fixed or self.signature_added)

    def describe(self, done: bool = True) -> list[str]:
        """One line per normalization applied (``done``) or to apply on load (``done=False``, what
        ``inspect`` says of a file), and the files kept; ``[]`` when there is nothing to do."""
        lines = []
        if self.op_codes_fixed:
            verb = "moved" if done else "only in deprecated_builtin_code: moved on load"
            lines.append(
                f"op codes of {self.op_codes_fixed} operator type(s) {verb}"
                + (" from deprecated_builtin_code to builtin_code" if done else " to builtin_code")
                + " (a legacy file; the schema's GetBuiltinCode rule)"
            )
        if self.signature_added:
            verb = "added" if done else "added on load"
            lines.append(f"signature {self.signature_added!r} {verb} (the file has none)")
        if self.associated_files and self.changed and done:
            lines.append(f"associated files kept: {', '.join(self.associated_files)}")
        return lines

    def summary(self) -> str:
        """The lines of :meth:`describe` joined, or ``"none needed"``."""
        return "; ".join(self.describe()) or "none needed"


def normalize_model(source: str | Path | bytes | fbm.LoadedModel) -> tuple[bytes, SourceNormalization]:
    """Normalize a legacy .tflite so every tool reads it as LiteRT runs it; outputs stay the same.

    Only what is legacy is rewritten: a file that needs nothing is returned byte for byte. Weights
    stored after the flatbuffer and the zip of associated files are kept.

    Args:
        source: A ``.tflite`` path, its bytes, or a :class:`~liteship.model.LoadedModel`.

    Returns:
        ``(bytes, record)``: the normalized model and a :class:`SourceNormalization`.

    Raises:
        ModelError: The file is not a readable model.
    """
    loaded = source if isinstance(source, fbm.LoadedModel) else fbm.load_model(source)
    model = loaded.model
    files = fbm.associated_files(loaded.data)
    fixed = _fix_op_codes(model)
    added = _add_signature(model)
    record = SourceNormalization(
        op_codes_fixed=fixed,
        signature_added=added,
        associated_files=tuple(sorted(files)),
        schema_version=int(model.version or 0),
        subgraphs=len(model.subgraphs or []),
        producer=_text(model.description),
    )
    if not record.changed:
        return loaded.data, record
    return fbm.attach_files(fbm.pack_model(model, loaded.data), files), record


def legacy_parts(source: str | Path | bytes | fbm.LoadedModel) -> SourceNormalization:
    """What :func:`normalize_model` would change, without rewriting anything (for ``inspect``, which
    reports the associated files itself: ``associated_files`` stays empty, an unreadable zip is its
    warning, not an error here).

    Raises:
        ModelError: The file is not a readable model.
    """
    loaded = source if isinstance(source, fbm.LoadedModel) else fbm.load_model(source)
    model = loaded.model
    codes = model.operatorCodes or []
    return SourceNormalization(
        op_codes_fixed=sum(int(c.builtinCode) != fbm.builtin_code(c) for c in codes),
        signature_added=None if model.signatureDefs or not model.subgraphs else SIGNATURE_KEY,
        schema_version=int(model.version or 0),
        subgraphs=len(model.subgraphs or []),
        producer=_text(model.description),
    )


def _fix_op_codes(model: Any) -> int:
    fixed = 0
    for code in model.operatorCodes or []:
        real = fbm.builtin_code(code)
        if int(code.builtinCode) != real:
            code.builtinCode = real
            code.deprecatedBuiltinCode = min(real, _PLACEHOLDER_FOR_GREATER_OP_CODES)
            fixed += 1
    return fixed


def _add_signature(model: Any) -> str | None:
    if model.signatureDefs or not model.subgraphs:
        return None
    sg = model.subgraphs[0]
    schema = fbm.schema

    def maps(indices: Any) -> list[Any]:
        out = []
        for i in list(indices if indices is not None else []):
            tm = schema.TensorMapT()
            tm.name = fbm.tensor_name(sg.tensors[i])
            tm.tensorIndex = int(i)
            out.append(tm)
        return out

    sig = schema.SignatureDefT()
    sig.inputs, sig.outputs = maps(sg.inputs), maps(sg.outputs)
    sig.signatureKey = SIGNATURE_KEY
    sig.subgraphIndex = 0
    model.signatureDefs = [sig]
    return SIGNATURE_KEY


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


__all__ = ["SIGNATURE_KEY", "SourceNormalization", "legacy_parts", "normalize_model"]
