"""The admin client's bench-job calls (``liteship fleet bench``), on :class:`liteship.fleet.client.AdminClient`.

>>> c = BenchClient("http://127.0.0.1:8700", token="…")                       # doctest: +SKIP
>>> job = c.queue(["a.tflite", "b.tflite"], devices=["dev-1"])                # doctest: +SKIP
>>> c.wait(job["id"], timeout_s=600)["tasks"][0]["results"]                   # doctest: +SKIP
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship.data import load_dataset
from liteship.errors import FleetError, UsageError
from liteship.fleet.client import AdminClient
from liteship.fleet.jobs_models import MAX_DATA_BYTES, MAX_OUTPUT_BYTES, MAX_SAMPLES, VARIANT_NAME_PATTERN

OPEN = ("queued", "running")
DATA_NAME = "validation-data.npz"  # the validation inputs' target name in a validate job


@dataclass(frozen=True)
class PreparedValidation:
    """A validate job's two files, made on the workstation.

    Attributes:
        data: ``.npz`` with ``x``: the samples, preprocessed as ``liteship validate`` prepares them
            (a signed TUF target: every device runs the variants on exactly these).
        reference: ``.npz`` with the reference outputs per variant, the labels ``y`` (if any) and
            ``meta`` (JSON: which array is which output); it stays on the server.
        samples: How many samples (a bounded subset of the data).
        notes: What was cut or decided (the subset, the preprocessing rule).
    """

    data: bytes
    reference: bytes
    samples: int
    notes: tuple[str, ...]


def prepare_validation(
    variants: Sequence[str | Path],
    data: str | Path,
    *,
    reference: str | Path | None = None,
    limit: int | None = None,
    names: Sequence[str] | None = None,
) -> PreparedValidation:
    """The inputs and reference outputs of a validate job.

    The samples are read and preprocessed exactly as ``liteship validate`` reads them (the first
    variant's declared rule), cut to a bounded subset: at most :data:`MAX_SAMPLES`, and no more than
    fits :data:`MAX_OUTPUT_BYTES` of one variant's outputs and :data:`MAX_DATA_BYTES` of inputs. The
    reference outputs come from ``reference`` (e.g. the float model) when given, else from each variant
    itself on this workstation (then the figures say how far the device is from the workstation).

    Raises:
        UsageError: A model with several inputs, or variants that declare different preprocessing.
        DataError, ModelError: The data or a model cannot be used.
    """
    import io
    import json

    import numpy as np

    from liteship.runtime.reference import open_reference
    from liteship.validate.comparator import batches, candidate_preprocessing, feed_for

    names = list(names) if names is not None else [variant_name(p) for p in variants]
    runners: list[Any] = []
    ref_runner = None
    try:
        runners = [open_reference(str(p)) for p in variants]
        ref_runner = open_reference(reference) if reference is not None else None
        first = runners[0]
        if len(first.input_specs) != 1:
            raise UsageError(
                f"{names[0]} has {len(first.input_specs)} inputs; fleet validation takes one-input models.",
                hint="Validate it locally with `liteship validate`.",
            )
        pre, pre_from = candidate_preprocessing(str(variants[0]), first, reference, ref_runner)
        for n, p, r in zip(names[1:], variants[1:], runners[1:], strict=True):
            other, _ = candidate_preprocessing(str(p), r, reference, ref_runner)
            if other.to_dict() != pre.to_dict():
                raise UsageError(
                    f"{n} declares other preprocessing than {names[0]}; one job has one set of inputs.",
                    hint="Queue a validation job per preprocessing rule.",
                )
        per_sample = max(
            sum(int(np.prod(s.shape[1:] or (1,))) * np.dtype(s.dtype).itemsize for s in r.output_specs)
            for r in runners
        )
        dataset = load_dataset(data, preprocessing=pre, input_shape=first.input_specs[0].shape, limit=limit)
        x0 = np.asarray(dataset[0][0])
        cap = min(
            MAX_SAMPLES, MAX_OUTPUT_BYTES // max(per_sample, 1), MAX_DATA_BYTES // max(x0.nbytes, 1) - 1
        )
        if cap < 1:
            raise UsageError(
                f"one sample's outputs ({per_sample} bytes) are over what a device sends back "
                f"({MAX_OUTPUT_BYTES} bytes).",
                hint="Validate this model locally with `liteship validate`.",
            )
        notes = [f"preprocessing: {pre.to_dict()} ({pre_from})"]
        if len(dataset) > cap:
            notes.append(
                f"a bounded subset: the first {cap} of {len(dataset)} samples (a device sends back at most "
                f"{MAX_SAMPLES} samples and {MAX_OUTPUT_BYTES >> 10} KiB of outputs per variant)."
            )
            dataset = dataset.take(cap)
        x = np.stack([np.asarray(s) for s, _ in dataset])
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "data": str(data),
            "reference": str(reference) if reference is not None else "each variant on the workstation",
            "preprocessing": pre.to_dict(),
            "variants": {},
        }
        for i, (n, r) in enumerate(zip(names, runners, strict=True)):
            runner = ref_runner or r
            meta["reference_backend"] = f"{runner.backend} (workstation)"
            outs: dict[str, list[np.ndarray]] = {}
            for xs, _ in batches(dataset):
                for k, v in runner.infer(feed_for(runner, xs)).items():
                    outs.setdefault(k, []).append(v)
            keys = []
            for j, (k, v) in enumerate(outs.items()):
                arrays[f"r{i}_{j}"] = np.concatenate(v)
                keys.append([f"r{i}_{j}", k])
            meta["variants"][n] = keys
        if dataset.has_labels:
            arrays["y"] = np.asarray(dataset.labels(), dtype=np.int64)
        buf_x, buf_r = io.BytesIO(), io.BytesIO()
        np.savez(buf_x, x=x)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez(buf_r, **arrays)  # type: ignore[arg-type]
        return PreparedValidation(buf_x.getvalue(), buf_r.getvalue(), len(x), tuple(notes))
    finally:
        for r in runners:
            r.close()
        if ref_runner is not None:
            ref_runner.close()


def variant_name(path: str | Path) -> str:
    """The name a variant is known by on devices: its file name, made safe for a TUF target path."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "-", Path(path).name)[:100].lstrip("._+-") or "variant.tflite"
    if not re.match(VARIANT_NAME_PATTERN, name):
        raise UsageError(f"cannot make a target name of {str(path)!r}.", hint="Rename the file.")
    return name


class BenchClient(AdminClient):
    """Upload variants, queue a bench job, read and wait for its results."""

    def upload_variant(self, path: str | Path) -> dict[str, Any]:
        with open(path, "rb") as f:
            return self._call("POST", "/api/v1/bench/variants", content=f)

    def queue(
        self,
        variants: Sequence[str | Path],
        *,
        names: Sequence[str] | None = None,
        devices: Sequence[str] | None = None,
        group: str | None = None,
        profile: dict[str, str] | None = None,
        tags: Sequence[str] | None = None,
        runs: int = 50,
        warmup: int = 5,
        min_seconds: float = 1.0,
        threads: int | None = None,
        targets_key: str | Path | None = None,
        kind: str = "bench",
        validation: PreparedValidation | None = None,
        gates: dict[str, float | None] | None = None,
    ) -> dict[str, Any]:
        """Upload ``variants`` and queue a job on the devices chosen by ``devices``, ``group``, ``profile``
        or ``tags``.

        Args:
            variants: ``.tflite`` files.
            names: What to call each variant on the devices. Defaults to the file names.
            devices / group / profile / tags: Exactly one: device ids, a hardware group
                (:func:`liteship.fleet.jobs.profile_group`), ``KEY: VALUE`` pairs of the device profile,
                or cohort tags (the devices carrying all of them).
            runs / warmup / min_seconds / threads: As for ``liteship bench``; ``threads`` defaults to the
                agent's own thread count.
            targets_key: The offline TUF targets key, when the server does not hold it.
            kind: ``bench``, ``validate`` or ``profile``.
            validation: A validate job's inputs and reference outputs (:func:`prepare_validation`).
            gates: A validate job's gates (those of ``liteship validate``: ``min_agreement``, …).

        Returns:
            The job (``id``, ``variants``, ``tasks``, ``tuf``).
        """
        missing = [str(p) for p in variants if not Path(p).is_file()]
        if missing:
            raise UsageError(f"variant file {missing[0]!r} does not exist.", hint="Give .tflite files.")
        names = list(names) if names is not None else [variant_name(p) for p in variants]
        refs = [
            {"name": n, "sha256": self.upload_variant(p)["sha256"]}
            for n, p in zip(names, variants, strict=True)
        ]
        body: dict[str, Any] = {"variants": refs, "runs": runs, "warmup": warmup, "min_seconds": min_seconds}
        chosen = (("devices", devices), ("group", group), ("profile", profile), ("tags", tags))
        body.update({k: list(v) if k == "tags" else v for k, v in chosen if v})
        if threads is not None:
            body["threads"] = threads
        if kind != "bench":
            body["kind"] = kind
        if validation is not None:
            body["data"] = {"name": DATA_NAME, "sha256": self.upload_bytes(validation.data)["sha256"]}
            body["reference"] = self.upload_bytes(validation.reference)["sha256"]
            body["gates"] = {k: v for k, v in (gates or {}).items() if v is not None}
        job = self._call("POST", "/api/v1/bench/jobs", json=body)
        if job.get("tuf") == "pending-offline-signature" and targets_key is not None:
            self.sign_targets(targets_key)
            job["tuf"] = "signed"
        return job

    def upload_bytes(self, data: bytes) -> dict[str, Any]:
        return self._call("POST", "/api/v1/bench/variants", content=data)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/bench/jobs/{job_id}")

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/bench/jobs", params={"limit": limit})

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float,
        every_s: float = 1.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """The job once no task is queued or running, or when ``timeout_s`` has passed (tasks still open
        are then left as they are: the caller decides what a missing device means)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if all(t["state"] not in OPEN for t in job["tasks"]) or time.monotonic() >= deadline:
                return job
            time.sleep(min(every_s, max(0.0, deadline - time.monotonic())))


def parse_profile(pairs: Sequence[str]) -> dict[str, str]:
    """``["machine=aarch64", "isa=dotprod"]`` → a dict (``KEY=VALUE`` each)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(
                f"profile filter {pair!r} is not KEY=VALUE.", hint="For example machine=aarch64."
            )
        out[key.strip()] = value.strip()
    return out


__all__ = [
    "BenchClient",
    "PreparedValidation",
    "prepare_validation",
    "parse_profile",
    "variant_name",
    "FleetError",
]
