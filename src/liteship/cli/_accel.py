"""The ``--accelerator`` option shared by run, validate, bench and inspect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

ACCELERATOR_HELP = (
    "Run on LiteRT's CompiledModel API with this accelerator: cpu, gpu, npu, a fallback list such as "
    "gpu,cpu (ops the GPU rejects, or a GPU that fails to start, go to the CPU), or auto. "
    "Defaults to the Interpreter (XNNPACK on the CPU, external delegates)."
)


MANY_HELP = (
    "Accelerator to time on (repeatable, e.g. --accelerator interpreter --accelerator cpu "
    "--accelerator gpu,cpu): interpreter (LiteRT's Interpreter, XNNPACK) or, on LiteRT's CompiledModel "
    "API, cpu, gpu, npu, a fallback list such as gpu,cpu, or auto. Defaults to the Interpreter."
)


def _one(ctx: click.Context, param: click.Parameter, value: str) -> str | None:
    from liteship.runtime.compiled import AcceleratorError, parse_accelerator

    if value.strip().lower() == "interpreter" and param.multiple:
        return None
    try:
        return ",".join(parse_accelerator(value))
    except AcceleratorError as e:
        raise click.BadParameter(e.message, ctx=ctx, param=param) from None


def _check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None:
        return None
    if param.multiple:
        return tuple(dict.fromkeys(_one(ctx, param, v) for v in value)) or (None,)
    return _one(ctx, param, value)


def accelerator_option(help: str = ACCELERATOR_HELP, *, multiple: bool = False) -> Callable[[Any], Any]:
    """``--accelerator``: one value (a canonical string, or None: the Interpreter), or with ``multiple``
    a tuple of them, where ``interpreter`` stands for the Interpreter."""
    return click.option(
        "--accelerator",
        "accelerator",
        default=None,
        multiple=multiple,
        metavar="cpu|gpu|npu|gpu,cpu|auto" + ("|interpreter" if multiple else ""),
        callback=_check,
        help=MANY_HELP if multiple else help,
    )
