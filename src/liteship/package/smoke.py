"""The device's smoke test: run a package's golden inputs on LiteRT before the model is swapped in.

>>> result = smoke_test("incoming/1.2.0")          # an extract_verified() folder  # doctest: +SKIP
>>> result.ok, result.failures                                                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liteship.errors import LiteshipError, PackageError
from liteship.package.golden import check_finite, run_golden
from liteship.package.manifest import MANIFEST_NAME, Manifest
from liteship.package.signing import KeyLike
from liteship.package.verify import Package, open_package
from liteship.runtime.factory import device_runner
from liteship.types import ReportMixin


@dataclass(frozen=True)
class SmokeResult(ReportMixin):
    """Outcome of :func:`smoke_test`. ``ok`` is true only when ``failures`` is empty.

    Attributes:
        max_abs_error: Largest ``|output - expected|`` per output over all samples.
        latency_ms_median: Median per-sample latency (the budget applies to it).
    """

    ok: bool
    model_id: str
    version: str
    samples: int = 0
    failures: tuple[str, ...] = ()
    max_abs_error: dict[str, float] = field(default_factory=dict)
    latency_ms_median: float | None = None
    latency_ms_max: float | None = None
    latency_budget_ms: float | None = None
    backend: str = ""


def smoke_test(
    package: str | os.PathLike | Package,
    *,
    public_key: KeyLike | None = None,
    num_threads: int | None = None,
    accelerator: str | None = None,
) -> SmokeResult:
    """Run the golden inputs: outputs within tolerance, finite, median latency within the budget.

    Golden inputs or expected outputs with NaN or Inf fail the test without running the model: a
    comparison against them passes or fails by accident.

    Args:
        package: A folder written by :func:`~liteship.package.extract_verified` (its file hashes are
            re-checked against its manifest), an opened :class:`Package`, or a ``.lsp`` file (then
            ``public_key`` is required and the package is verified first).
        public_key: The signer's public key, for a ``.lsp`` file.
        num_threads: LiteRT threads. Defaults to the number of cores.
        accelerator: Run on this accelerator (LiteRT CompiledModel, e.g. ``"gpu,cpu"``), as the device
            will; one that fails to start falls back to the CPU (noted in ``backend``). Defaults to
            ``None``: the Interpreter on the CPU.

    Returns:
        A :class:`SmokeResult`; a model that cannot load or run is a failure, not an exception.

    Raises:
        PackageError: The package itself cannot be read or does not match its manifest.
    """
    pkg = _resolve(package, public_key)
    m = pkg.manifest
    inputs, expected = pkg.golden()
    atol, rtol = float(m.golden["atol"]), float(m.golden["rtol"])
    budget = m.golden.get("latency_budget_ms")
    failures: list[str] = []
    errors: dict[str, float] = {}
    latencies: list[float] = []
    backend = ""
    try:
        for name, arr in {**inputs, **expected}.items():
            side = "input" if name in inputs else "output"
            check_finite(np.asarray(arr), f"the package's golden {side} {name!r}")
    except PackageError as e:
        return SmokeResult(ok=False, model_id=m.model_id, version=m.version, failures=(e.message,))
    try:  # the device prepares frames from this declaration: unreadable means un-normalized inference
        from liteship.package.reference import declared_preprocessing

        declared_preprocessing(pkg.model_bytes, m.model.get("preprocessing"))
    except (LiteshipError, TypeError, ValueError) as e:
        failures.append(
            f"the model's preprocessing declaration cannot be read ({e}); frames would be fed un-normalized."
        )
    try:
        runner, fallback = device_runner(pkg.model_bytes, accelerator=accelerator, num_threads=num_threads)
        with runner:
            backend = runner.backend + (f" (accelerator fell back: {fallback})" if fallback else "")
            runner.infer({k: v[:1] for k, v in inputs.items()})  # warm-up: the first invoke allocates
            outputs, latencies = run_golden(runner, inputs)
    except LiteshipError as e:
        failures.append(f"the model could not run: {e}")
        outputs = {}
    for name, want in expected.items() if outputs else ():
        got = np.asarray(outputs.get(name), dtype=np.float64)
        if got.shape != want.shape:
            failures.append(f"output {name!r} has shape {list(got.shape)}; expected {list(want.shape)}.")
            continue
        if not np.all(np.isfinite(got)):
            failures.append(
                f"output {name!r} contains NaN or Inf on {int(np.sum(~np.isfinite(got)))} values."
            )
            continue
        diff = np.abs(got - want.astype(np.float64))
        errors[name] = float(diff.max(initial=0.0))
        bad = diff > atol + rtol * np.abs(want)
        if bad.any():
            failures.append(
                f"output {name!r} differs from the golden output on {int(bad.sum())} values "
                f"(max |diff| {errors[name]:.3g}; allowed atol {atol:g} + rtol {rtol:g}·|expected|)."
            )
    median = statistics.median(latencies) if latencies else None
    if budget is not None and median is not None and median > float(budget):
        failures.append(f"median latency {median:.2f} ms exceeds the budget of {float(budget):.2f} ms.")
    return SmokeResult(
        ok=not failures,
        model_id=m.model_id,
        version=m.version,
        samples=len(latencies),
        failures=tuple(failures),
        max_abs_error=errors,
        latency_ms_median=median,
        latency_ms_max=max(latencies) if latencies else None,
        latency_budget_ms=None if budget is None else float(budget),
        backend=backend,
    )


def _resolve(package: str | os.PathLike | Package, public_key: KeyLike | None) -> Package:
    if isinstance(package, Package):
        return package
    path = Path(package)
    if path.is_dir():
        return _read_folder(path)
    if public_key is None:
        raise PackageError(
            f"smoke-testing the package file {str(path)!r} needs its public key to verify it first.",
            hint="Pass public_key=, or smoke-test a folder written by extract_verified().",
        )
    return open_package(path, public_key)


def _read_folder(folder: Path) -> Package:
    """An extracted package: the signature was checked at extraction; hashes catch later disk damage."""
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise PackageError(
            f"{str(folder)!r} has no {MANIFEST_NAME}; extract packages with extract_verified()."
        )
    manifest = Manifest.from_bytes(manifest_path.read_bytes())
    files = {}
    for name in (manifest.model["file"], manifest.golden["file"]):
        data = (folder / name).read_bytes() if (folder / name).is_file() else b""
        entry = manifest.files.get(name)
        if entry is None or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise PackageError(
                f"{name} in {str(folder)!r} is missing or differs from its manifest (damaged on disk?).",
                hint="Extract the package again with extract_verified().",
            )
        files[name] = data
    return Package(str(folder), manifest, files)


__all__ = ["SmokeResult", "smoke_test"]
