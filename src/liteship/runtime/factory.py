"""The runner factories: which LiteRT runner runs a model — the Interpreter (:class:`LiteRTRunner`) or
the CompiledModel (:class:`CompiledModelRunner`) on an accelerator — for the workstation
(:func:`open_runner`) and for a device (:func:`device_runner`, which falls back to the CPU)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liteship.errors import AcceleratorError, UsageError
from liteship.runtime.base import Runner
from liteship.runtime.compiled import CompiledModelRunner
from liteship.runtime.litert import LiteRTRunner


def open_runner(
    model: str | Path | bytes,
    *,
    accelerator: str | Sequence[str] | None = None,
    num_threads: int | None = None,
    raw: bool = False,
    signature: str | None = None,
    **interpreter_options: Any,
) -> Runner:
    """The LiteRT runner for ``accelerator``: the Interpreter when it is ``None`` (the default), else
    :class:`CompiledModelRunner` (see docs/decisions.md, issue 15, for why the Interpreter stays the
    default).

    Args:
        interpreter_options: Interpreter-only options (``delegates``, ``delegate_fallback``,
            ``use_xnnpack``); refused with an accelerator.

    Raises:
        UsageError: Interpreter-only options given with an accelerator.
    """
    if accelerator is None:
        return LiteRTRunner(
            model, num_threads=num_threads, raw=raw, signature=signature, **interpreter_options
        )
    given = [k for k, v in interpreter_options.items() if v not in (None, False, (), [], True)]
    if given:
        raise UsageError(
            f"{', '.join(given)} apply to the Interpreter runner, not to accelerator={accelerator!r}.",
            hint="Drop them, or run without an accelerator (the Interpreter with its delegates).",
        )
    return CompiledModelRunner(
        model, accelerator=accelerator, num_threads=num_threads, raw=raw, signature=signature
    )


def device_runner(
    model: str | Path | bytes, *, accelerator: str | None = None, num_threads: int | None = None
) -> tuple[Runner, str | None]:
    """The runner a device uses: on ``accelerator`` when it starts, else on the CPU (the Interpreter).

    Never fails because of the accelerator: one that fails to initialise, or rejects the model, falls
    back to the CPU, and the reason is returned so the caller can log and report it. A model that
    cannot load on the CPU either still raises.

    Returns:
        ``(runner, fallback reason or None)``. ``runner.accelerator`` (CompiledModel) says what it runs on.

    Raises:
        ModelError, InferenceError: The model cannot run on the CPU either.
    """
    if accelerator is None:
        return LiteRTRunner(model, num_threads=num_threads), None
    try:
        runner = CompiledModelRunner(model, accelerator=accelerator, num_threads=num_threads)
    except AcceleratorError as e:
        return LiteRTRunner(model, num_threads=num_threads), e.message
    return runner, runner.fallback


__all__ = ["open_runner", "device_runner"]
