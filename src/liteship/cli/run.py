"""``liteship run MODEL --input x.npy|image.jpg``: one inference with LiteRT, top-k classes or the outputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from liteship.cli._common import console, emit_json, err_console, json_option

if TYPE_CHECKING:
    from liteship.runtime.predict import PredictionReport


def _options(values: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}.", param_hint="--delegate-option")
        options[key.strip()] = value.strip()
    return options


@click.command(name="run")
@click.argument("model", metavar="MODEL.tflite")
@click.option("--input", "input_path", required=True, metavar="PATH", help="A .npy/.npz array or an image.")
@click.option(
    "--output",
    "output_path",
    default=None,
    metavar="OUT.npy",
    help="Save the outputs (.npy: the first; .npz: all).",
)
@click.option(
    "--top-k", default=5, show_default=True, type=click.IntRange(min=0), help="Classes to show; 0 for none."
)
@click.option(
    "--labels",
    default=None,
    metavar="labels.txt",
    help="One label per line. Defaults to the model's metadata.",
)
@click.option(
    "--threads", default=None, type=click.IntRange(min=1), help="CPU threads. Defaults to the core count."
)
@click.option(
    "--delegate",
    "delegates",
    multiple=True,
    metavar="PATH.so",
    help="External delegate library (repeatable).",
)
@click.option(
    "--delegate-option",
    "delegate_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option for the delegates (repeatable).",
)
@click.option("--delegate-fallback", is_flag=True, help="Run on CPU if a delegate fails, instead of failing.")
@click.option(
    "--signature", default=None, metavar="KEY", help="Signature to run, for multi-signature models."
)
@click.option("--raw", is_flag=True, help="Feed and print the model's own dtypes (no (de)quantization).")
@json_option
def cli(
    model: str,
    input_path: str,
    output_path: str | None,
    top_k: int,
    labels: str | None,
    threads: int | None,
    delegates: tuple[str, ...],
    delegate_options: tuple[str, ...],
    delegate_fallback: bool,
    signature: str | None,
    raw: bool,
    as_json: bool,
) -> None:
    """Run MODEL on one input with LiteRT and print the top classes (or the outputs).

    Images are resized and normalized as the model declares (liteship's record, else TFLite metadata).

    \b
    Example:
      liteship run mobilenet.tflite --input cat.jpg --top-k 3
      liteship run model.tflite --input x.npy --output y.npy --json
    """
    from liteship.runtime.delegates import DelegateSpec
    from liteship.runtime.predict import predict

    options = _options(delegate_options)
    if options and not delegates:
        raise click.BadParameter("given without --delegate.", param_hint="--delegate-option")
    report = predict(
        model,
        input_path,
        top_k=top_k,
        labels=labels,
        num_threads=threads,
        delegates=[DelegateSpec(d, options) for d in delegates],
        delegate_fallback=delegate_fallback,
        raw=raw,
        signature=signature,
    )
    if output_path:
        _save(report, output_path)
    if as_json:
        emit_json(report)
    else:
        _print(report)


def _save(report: PredictionReport, path: str) -> None:
    import numpy as np

    if path.endswith(".npz"):
        np.savez(path, **report.outputs)
    else:
        np.save(path, next(iter(report.outputs.values())))
        if len(report.outputs) > 1:
            err_console.print(f"note: saved the first of {len(report.outputs)} outputs; use .npz for all.")
    err_console.print(f"wrote {path}")


def _print(report: PredictionReport) -> None:
    from rich.table import Table

    for w in report.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", markup=True, highlight=False)
    if report.top_k:
        title = f"{Path(report.model).name}: top {max(t.rank for t in report.top_k)}"
        table = Table(title=title, title_justify="left")
        batched = any(t.sample for t in report.top_k)
        if batched:
            table.add_column("sample", justify="right")
        for name in ("rank", "class", "label", "score"):
            table.add_column(name, justify="left" if name == "label" else "right")
        for t in report.top_k:
            row = [str(t.rank), str(t.index), t.label or "", f"{t.score:.4f}"]
            table.add_row(*([str(t.sample)] if batched else []), *row)
        console.print(table)
    else:
        for name, arr in report.outputs.items():
            console.print(f"[bold]{name}[/] {arr.dtype}{list(arr.shape)}")
            console.print(str(arr) if arr.size <= 64 else f"min {arr.min():.6g}  max {arr.max():.6g}")
    pre = report.preprocessing_source
    delegates = ", ".join(d.describe() for d in report.delegates) or "none"
    console.print(
        f"[dim]{report.backend}; input {report.input_shape} (preprocessing: {pre}); "
        f"{report.latency_ms:.2f} ms; delegates: {delegates}[/]"
    )
