"""Validation jobs on the server: a device's outputs against the workstation's reference outputs.

The workstation (``liteship fleet validate``, :func:`liteship.fleet.jobs_client.prepare_validation`)
prepares two files: the **validation inputs** (``x``, already preprocessed as ``liteship validate``
would, a bounded subset), a signed TUF target the devices fetch; and the **reference outputs** (one set
per variant, plus the labels), which stay on the server. A device runs each variant over ``x`` with its
production runtime and accelerator and posts the outputs of one variant at a time
(``POST /api/v1/devices/{id}/bench/{job}/outputs``). The server replays both sides through
:func:`liteship.validate.validate` with :class:`~liteship.runtime.recorded.RecordedRunner`s: the figures
(top-1/top-5 agreement, accuracy, max/mean abs error, SQNR per output) and the gates are computed by the
code of ``liteship validate`` itself, not a copy of it. Only the figures are stored, never the outputs.

Bounds: at most :data:`~liteship.fleet.jobs_models.MAX_SAMPLES` samples, one variant's outputs at most
:data:`~liteship.fleet.jobs_models.MAX_OUTPUT_BYTES`, shapes and byte counts must agree with the samples
the job sent; NaN/Inf outputs are counted (``candidate_nan``/``candidate_inf``) and fail the job's gates.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from liteship.data import Dataset
from liteship.errors import FleetError
from liteship.fleet.jobs_models import MAX_OUTPUT_BYTES, ValidationOutputs
from liteship.types import Preprocessing, TensorSpec

INPUT = "input"  # the recorded runners' one input: the validation samples as the device was fed them
MAX_REFERENCE_BYTES = 256 << 20


def read_npz(read: Callable[[str, int], bytes], sha256: str, limit: int) -> dict[str, np.ndarray]:
    """The arrays of a stored ``.npz`` blob (no pickles), at most ``limit`` bytes."""
    raw = read(sha256, limit)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as files:
            return {k: files[k] for k in files.files}
    except (OSError, ValueError) as e:
        raise FleetError(f"stored blob {sha256[:12]}… is not a readable .npz ({e}).") from e


def decode_outputs(body: ValidationOutputs, samples: int) -> dict[str, np.ndarray]:
    """The device's arrays, checked: one row per sample, bytes = shape × dtype, bounded in total.

    Raises:
        FleetError: A count, a shape or a size that does not add up.
    """
    if body.samples != samples:
        raise FleetError(f"the job sent {samples} samples, the device answered for {body.samples}.")
    out: dict[str, np.ndarray] = {}
    total = 0
    for o in body.outputs:
        if o.shape[0] != samples or any(d < 1 for d in o.shape):
            raise FleetError(f"output {o.name[:100]!r} has shape {o.shape}; expected ({samples}, …).")
        expected = math.prod(o.shape) * np.dtype(o.dtype).itemsize
        total += expected
        if total > MAX_OUTPUT_BYTES:
            raise FleetError(f"the outputs are over {MAX_OUTPUT_BYTES} bytes.")
        try:
            raw = base64.b64decode(o.data, validate=True)
        except ValueError as e:
            raise FleetError(f"output {o.name[:100]!r} is not base64 ({e}).") from e
        if len(raw) != expected:
            raise FleetError(f"output {o.name[:100]!r} is {len(raw)} bytes; its shape says {expected}.")
        if o.name in out:
            raise FleetError(f"output {o.name[:100]!r} is listed twice.")
        out[o.name] = np.frombuffer(raw, dtype=o.dtype).reshape(o.shape)
    return out


def figures(
    *,
    variant: str,
    device_id: str,
    body: ValidationOutputs,
    x: np.ndarray,
    reference: dict[str, np.ndarray],
    gates: dict[str, Any],
    model_bytes: bytes | None = None,
) -> dict[str, Any]:
    """The figures of ``liteship validate`` for one device's outputs of one variant (JSON-ready).

    ``reference`` is the reference ``.npz`` (see :func:`liteship.fleet.jobs_client.prepare_validation`).
    """
    from liteship.runtime.recorded import RecordedRunner
    from liteship.validate import validate

    cand_out = decode_outputs(body, len(x))
    meta = json.loads(bytes(reference["meta"]).decode())
    keys = meta["variants"].get(variant)
    if keys is None:
        raise FleetError(f"the job has no reference outputs for variant {variant!r}.")
    ref_out = {name: reference[key] for key, name in keys}
    y = reference.get("y")
    input_spec = [TensorSpec(INPUT, (1, *x.shape[1:]), str(x.dtype))]

    def specs(arrays: dict[str, np.ndarray]) -> list[TensorSpec]:
        return [TensorSpec(k, (1, *v.shape[1:]), str(v.dtype)) for k, v in arrays.items()]

    backend = f"{body.backend or 'LiteRT'} on {body.accelerator or 'cpu'} ({device_id})"
    cand = RecordedRunner(
        {INPUT: x}, cand_out, input_specs=input_spec, output_specs=specs(cand_out),
        backend=backend, name=variant, model_bytes=model_bytes,
    )  # fmt: skip
    ref = RecordedRunner(
        {INPUT: x}, ref_out, input_specs=input_spec, output_specs=specs(ref_out),
        backend=str(meta.get("reference_backend") or "workstation"), name=str(meta.get("reference")),
    )  # fmt: skip
    labels = np.asarray(y, dtype=np.int64) if y is not None else None
    dataset = Dataset(
        lambda i: (x[i], int(labels[i]) if labels is not None else None),
        len(x),
        source=str(meta.get("data") or "validation data"),
        has_labels=labels is not None,
    )
    report = validate(cand, ref, dataset, preprocessing=Preprocessing(), progress=False, **gates)
    nonfinite = [o.name for o in report.outputs if o.candidate_nan or o.candidate_inf]
    failures = report.failures + [f"output {n!r} has NaN/Inf values on the device" for n in nonfinite]
    return {
        "samples": report.samples,
        "passed": report.passed and not nonfinite,
        "failures": failures,
        "outputs": [o.to_dict() for o in report.outputs],
        "agreement": [a.to_dict() for a in report.agreement],
        "gates": [g.to_dict() for g in report.gates],
        "notes": list(report.notes)[:10],
        "accelerator": body.accelerator,
        "backend": body.backend,
        "fallback": body.fallback,
    }


def store_figures(
    results: list[dict[str, Any]] | None, name: str, fig: dict[str, Any]
) -> list[dict[str, Any]]:
    """The task's results with variant ``name``'s validation figures set (kept until the final report)."""
    rows = [dict(r) for r in results or [] if r.get("name") != name]
    return [*rows, {"name": name, "ok": True, "validation": fig}]


def merge_validation(
    stored: list[dict[str, Any]] | None, final: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The final report's rows, each with the figures its outputs earned (a validate job); other
    jobs' rows are returned as they are."""
    figs = {r.get("name"): r["validation"] for r in stored or [] if isinstance(r.get("validation"), dict)}
    if not figs:
        return final
    out = []
    for r in final:
        fig = figs.get(r.get("name"))
        if fig is not None:
            r = {**r, "validation": fig}
        elif r.get("ok"):
            r = {**r, "ok": False, "error": "the device's outputs never reached the server."}
        out.append(r)
    return out


def _worst(values: Iterable[float | None], pick: Callable[..., float]) -> float | None:
    vs = [v for v in values if v is not None]
    return pick(vs) if vs else None


def group_figures(
    tasks: list[Any], variants: list[dict[str, Any]], group_of: dict[str, str]
) -> list[dict[str, Any]]:
    """Per hardware group (``group_of``: device id → group) and variant: the worst figure of its devices
    and whether every device passed. A device without figures (still running, failed) counts as not
    passed, and is named."""
    groups: dict[str, list[Any]] = {}
    for t in tasks:
        groups.setdefault(group_of.get(t.device_id, "unknown"), []).append(t)
    out = []
    for group, members in sorted(groups.items()):
        for v in variants:
            figs, missing = [], []
            for t in members:
                row = next((r for r in t.results or [] if r.get("name") == v["name"]), None)
                fig = (row or {}).get("validation") if (row or {}).get("ok", True) else None
                (figs.append(fig) if isinstance(fig, dict) else missing.append(t.device_id))
            agreements = [a for f in figs for a in f.get("agreement", [])]
            outputs = [o for f in figs for o in f.get("outputs", [])]
            sqnr = [(o.get("sqnr_db") if not o.get("identical") else math.inf) for o in outputs]
            out.append(
                {
                    "group": group,
                    "variant": v["name"],
                    "devices": [t.device_id for t in members],
                    "answered": len(figs),
                    "missing": missing,
                    "top1_min": _worst((a.get("top1") for a in agreements), min),
                    "top5_min": _worst((a.get("top5") for a in agreements), min),
                    "accuracy_min": _worst((a.get("candidate_accuracy") for a in agreements), min),
                    "max_abs_error": _worst((o.get("max_abs_error") for o in outputs), max),
                    "mean_abs_error_max": _worst((o.get("mean_abs_error") for o in outputs), max),
                    "sqnr_db_min": _finite(_worst(sqnr, min)),
                    "identical": bool(outputs) and all(o.get("identical") for o in outputs),
                    "passed": bool(figs) and not missing and all(f.get("passed") for f in figs),
                    "failures": sorted({x for f in figs for x in f.get("failures", [])})[:10],
                }
            )
    return out


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


__all__ = [
    "decode_outputs",
    "figures",
    "group_figures",
    "merge_validation",
    "read_npz",
    "store_figures",
    "MAX_REFERENCE_BYTES",
]
