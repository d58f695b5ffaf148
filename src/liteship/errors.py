"""liteship's exceptions: one user-facing root, one branch per stage.

Every message answers three questions: what failed, what was expected or available, what to try next.
The CLI prints ``str(error)`` without a traceback and exits with ``error.exit_code``.

    LiteshipError                     exit 1
    ├── UsageError                    exit 2  (bad arguments / configuration)
    ├── GateFailed                    exit 3  (a quality gate did not hold)
    ├── DataError                     (datasets, calibration, preprocessing)
    ├── ModelError                    (a .tflite that cannot be read or trusted)
    │   └── MetadataError
    ├── ConversionError               (the TFLite converter)
    │   └── UnsupportedOpsError
    ├── InferenceError                (runners: feeds, delegates, interpreters)
    │   └── DelegateError
    │       └── AcceleratorError      (a CompiledModel accelerator)
    ├── ValidationError
    ├── BenchmarkError
    ├── PackageError                  (packages, manifests)
    │   └── SignatureError
    ├── PipelineError
    ├── FleetError                    (server, admin client)
    │   ├── NotFound                  (HTTP 404: an id that does not exist)
    │   ├── Conflict                  (HTTP 409: contradicts the current state)
    │   ├── VariantConflict           (HTTP 409: a variant that does not fit its release)
    │   ├── SampleRefused             (HTTP 422: not a sample, or not this device's)
    │   ├── OverQuota                 (HTTP 429: a device's sample quota)
    │   └── StoreUnavailable          (HTTP 503: the artifact store)
    └── AgentError                    (the device agent)
        ├── ServerError               (the fleet server unreachable, or an error answer)
        ├── UpdateRefused             (an update refused: the current model untouched)
        ├── JobRefused                (a device job that does not verify, or is malformed)
        └── CapturePolicyError        (a capture policy malformed or out of bounds)

Every class of the tree is defined here (``tests/unit/test_errors_tree.py`` keeps the drawing exact and
finds any ``LiteshipError`` subclass defined elsewhere). Two exceptions are not in it because they never
reach a user: ``agent/pacing.py: JobStopped`` (the agent is stopping: a job ends at its next step) and
``quantize/search.py: BudgetExhausted`` (the search's budget, caught inside the search).
"""

from __future__ import annotations

from typing import Any


class LiteshipError(Exception):
    """Root of every error liteship raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        self.message = message
        self.hint = hint
        self.details = details
        super().__init__(message if not hint else f"{message} {hint}")


class UsageError(LiteshipError):
    """Arguments or configuration that cannot be used (exit 2)."""

    exit_code = 2


class GateFailed(LiteshipError):
    """A quality gate did not hold (exit 3). ``failures`` lists every failing check."""

    exit_code = 3

    def __init__(self, message: str, *, failures: list[str] | None = None, report: Any = None) -> None:
        self.failures = list(failures or [])
        self.report = report
        text = message
        if self.failures:
            text += "\n" + "\n".join(f"  - {f}" for f in self.failures)
        super().__init__(text)


class DataError(LiteshipError):
    """A dataset, calibration set or preprocessing declaration cannot be used."""


class ModelError(LiteshipError):
    """A .tflite file that cannot be read, is corrupt, or is not a model."""


class MetadataError(ModelError):
    """TFLite metadata that cannot be read or written."""


class ConversionError(LiteshipError):
    """The TFLite converter failed."""


class UnsupportedOpsError(ConversionError):
    """The model uses ops the chosen op set cannot express."""

    def __init__(
        self,
        message: str,
        *,
        ops: list[str],
        layers: dict[str, list[str]] | None = None,
        hint: str | None = None,
    ) -> None:
        self.ops = ops
        self.layers = layers or {}
        super().__init__(message, hint=hint)


class InferenceError(LiteshipError):
    """A runner could not load a model or run a feed."""


class DelegateError(InferenceError):
    """A delegate failed to load or to apply."""


class AcceleratorError(DelegateError):
    """An accelerator could not initialise, or cannot run the model's ops on its own."""


class ValidationError(LiteshipError):
    """Validation could not run (not: a gate failed — that is GateFailed)."""


class BenchmarkError(LiteshipError):
    """Benchmarking could not run."""


class PackageError(LiteshipError):
    """A package or manifest that cannot be built, read or trusted."""


class SignatureError(PackageError):
    """A signature that does not verify, or a key that cannot be used."""


class PipelineError(LiteshipError):
    """The pipeline configuration or a stage of it failed."""


class FleetError(LiteshipError):
    """The fleet server or its admin client failed."""


class NotFound(FleetError):
    """An id that does not exist (HTTP 404)."""


class Conflict(FleetError):
    """A request that contradicts the current state (HTTP 409)."""


class VariantConflict(FleetError):
    """A variant that does not fit its release (HTTP 409)."""


class SampleRefused(FleetError):
    """A sample upload that is not a sample, or not this device's to send (422)."""


class OverQuota(FleetError):
    """The device sent its quota of samples (429 with ``retry_after``)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(FleetError):
    """The artifact store cannot be reached or refused the operation (the API answers 503)."""


class AgentError(LiteshipError):
    """The device agent failed."""


class ServerError(AgentError):
    """The server could not be reached or answered with an error. ``status`` is None when unreachable."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds, from a 503/429 answer's Retry-After (bounded)


class UpdateRefused(AgentError):
    """An update that was refused; the current model is untouched. ``reason`` is a short code."""

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class JobRefused(AgentError):
    """A job that does not verify (TUF) or is malformed: it is reported and never runs."""


class CapturePolicyError(AgentError):
    """A capture policy that is malformed or out of bounds: refused, capture stays as it was."""
