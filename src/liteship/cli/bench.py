"""``liteship bench MODEL [MODEL ...]``: init, latency percentiles, throughput, memory, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from liteship.bench import benchmark
from liteship.bench.core import MAX_MIN_SECONDS, MAX_RUNS, MAX_WARMUP
from liteship.bench.html import MEMORY_NOTE, ROWS, cell, short_names
from liteship.cli._accel import accelerator_option
from liteship.cli._common import FiniteRange, console, emit_json, err_console, json_option, parse_ints

if TYPE_CHECKING:
    from liteship.bench import BenchReport


@click.command(name="bench")
@click.argument("models", nargs=-1, required=True, metavar="MODEL [MODEL ...]")
@click.option(
    "--threads",
    default=None,
    metavar="N[,N...]",
    help="Thread counts to compare, e.g. 1,2. Defaults to the number of cores.",
)
@click.option(
    "--runs", default=50, show_default=True, type=click.IntRange(1, MAX_RUNS), help="Minimum measured runs."
)
@click.option(
    "--warmup",
    default=5,
    show_default=True,
    type=click.IntRange(0, MAX_WARMUP),
    help="Warm-up runs (the first inference included).",
)
@click.option(
    "--min-seconds",
    default=1.0,
    show_default=True,
    type=FiniteRange(0, MAX_MIN_SECONDS),
    help="Minimum measured seconds per model and thread count.",
)
@click.option(
    "--data",
    default=None,
    metavar="PATH",
    help="Inputs from an image folder, .npy or .npz instead of random data.",
)
@click.option(
    "--measure",
    type=click.Choice(["invoke", "infer"]),
    default="invoke",
    show_default=True,
    help="What a run times: the interpreter's invoke alone, inputs set before the timer (as LiteRT's "
    "benchmark tools), or one whole Runner.infer call (feed check, input and output copies).",
)
@accelerator_option(multiple=True)
@json_option
@click.option(
    "--samples", "with_samples", is_flag=True, help="Include every latency sample in the --json output."
)
@click.option(
    "--html", "html_out", default=None, metavar="OUT.html", help="Write a page with latency histograms."
)
def cli(
    models: tuple[str, ...],
    threads: str | None,
    runs: int,
    warmup: int,
    min_seconds: float,
    data: str | None,
    measure: str,
    accelerator: tuple[str | None, ...],
    as_json: bool,
    with_samples: bool,
    html_out: str | None,
) -> None:
    """Benchmark one or more .tflite models with LiteRT, side by side.

    Each model runs warm-up, then at least --runs runs and --min-seconds seconds, for every thread count.
    A run times the interpreter's invoke alone, as LiteRT's benchmark tools do (--measure infer: one
    whole Runner.infer call).

    \b
    Example:
      liteship bench float.tflite int8.tflite --threads 1,2 --html bench.html
      liteship bench model.tflite --accelerator interpreter --accelerator cpu --accelerator gpu,cpu

    With --accelerator (LiteRT's CompiledModel API), init is compiling for the accelerator, and a GPU
    run is timed until its outputs are read back (a GPU run may return before the GPU is done).
    """
    if with_samples and not as_json:
        raise click.BadParameter(
            "only changes the --json output (the table and --html show statistics); add --json.",
            param_hint="--samples",
        )
    if html_out and Path(html_out).is_dir():
        raise click.BadParameter(
            f"{html_out!r} is a directory; give a file name, e.g. {str(Path(html_out) / 'bench.html')!r}.",
            param_hint="--html",
        )
    thread_counts = parse_ints(threads, "--threads") or (None,)
    if any(t < 1 for t in thread_counts if t is not None):
        raise click.BadParameter(
            f"thread counts must be at least 1, got {threads!r}.", param_hint="--threads"
        )
    report = benchmark(
        list(models),
        threads=thread_counts,
        runs=runs,
        warmup=warmup,
        min_seconds=min_seconds,
        data=data,
        measure=measure,  # type: ignore[arg-type]
        progress=not as_json,
        accelerators=accelerator or (None,),
    )
    if html_out:
        from liteship.bench.html import write_html

        path = write_html(report, html_out)
        err_console.print(f"wrote {path}")
    if as_json:
        emit_json(report.to_dict(samples=with_samples))
    else:
        _print_table(report)


def _print_table(report: BenchReport) -> None:
    from rich.table import Table

    table = Table(title="liteship bench", title_justify="left")
    table.add_column("", no_wrap=True)
    for e, name in zip(report.entries, short_names(report.entries), strict=True):
        threads = f"{e.threads} thread{'s' if e.threads != 1 else ''}"
        where = f"\n{e.accelerator}" if e.accelerator else ""
        table.add_column(f"{name}\n{threads}{where}", justify="right", overflow="fold")
    for name, attr in ROWS:
        table.add_row(name, *(cell(e, attr) for e in report.entries))
    console.print(table)
    m = report.machine
    console.print(
        f"[dim]{m.get('cpu')} ({m.get('cpu_count')} cores); {report.timed_note()} "
        "init = load + allocate + delegate (CompiledModel: compile for the accelerator).[/]",
        highlight=False,
    )
    console.print(f"[dim]{MEMORY_NOTE}[/]", highlight=False)
    for e in report.entries:
        for w in e.warnings:
            err_console.print(f"[yellow]warning:[/] {w}", markup=True, highlight=False)
