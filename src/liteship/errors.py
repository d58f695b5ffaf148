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
    ├── FleetError                    (server, client)
    └── AgentError
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
    """The fleet server or its client failed."""


class AgentError(LiteshipError):
    """The device agent failed."""
