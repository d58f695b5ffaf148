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


def _check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from liteship.runtime.compiled import AcceleratorError, parse_accelerator

    try:
        return ",".join(parse_accelerator(value))
    except AcceleratorError as e:
        raise click.BadParameter(e.message, ctx=ctx, param=param) from None


def accelerator_option(help: str = ACCELERATOR_HELP) -> Callable[[Any], Any]:
    return click.option(
        "--accelerator", default=None, metavar="cpu|gpu|npu|gpu,cpu|auto", callback=_check, help=help
    )
