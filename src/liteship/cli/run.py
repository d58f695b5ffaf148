"""``liteship run MODEL --input x.npy|image.jpg``: one inference with LiteRT, top-k classes or the outputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from liteship.cli._accel import accelerator_option
from liteship.cli._common import console, emit_json, err_console, json_option, parse_floats
from liteship.errors import DataError, LiteshipError

if TYPE_CHECKING:
    from collections.abc import Callable

    from liteship.runtime.predict import PredictionReport

# Library messages name parameters; this command's users know flags.
_FLAGS = (
    ("signature=None", "no --signature"),
    ("signature=", "--signature"),
    ("delegate_fallback=True", "--delegate-fallback"),
    ("preprocess=False", "--no-preprocess"),
    ("raw=True", "--raw"),
    ("allow_select_tf_ops", "--allow-select-tf-ops (liteship convert)"),
    ("use_xnnpack=True", "the default XNNPACK delegate"),
    ("accelerator=", "--accelerator "),
    ("delegates, ", "--delegate, "),
)
_WORDS = (("mean", "--mean"), ("std", "--std"))


def _as_flags(e: LiteshipError) -> LiteshipError:
    """Rewrite ``e``'s message and hint in terms of this command's flags."""
    import re

    def flag_for(flag: str) -> Callable[[re.Match[str]], str]:
        """``param`` → ``flag``, and ``param=`` → ``flag `` (``std=255`` → ``--std 255``)."""
        return lambda m: flag + (" " if m[1] else "")

    def sub(text: str | None) -> str | None:
        if text is None:
            return None
        for param, flag in _FLAGS:
            text = text.replace(param, flag)
        for param, flag in _WORDS:  # "std [0.0] must be > 0", "mean and std given with …", "std=255"
            text = re.sub(rf"(?<![\w\-=.]){param}\b(=)?", flag_for(flag), text)
        return text

    e.message, e.hint = sub(e.message) or "", sub(e.hint)
    e.args = (e.message if not e.hint else f"{e.message} {e.hint}",)
    return e


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
    "--mean",
    default=None,
    metavar="M[,M...]",
    help="Normalization mean, (x - mean) / std, replacing the model's. Defaults to the model's, else 0.",
)
@click.option(
    "--std",
    default=None,
    metavar="S[,S...]",
    help="Normalization std (> 0), replacing the model's. Defaults to the model's, else 1.",
)
@click.option(
    "--no-preprocess",
    "no_preprocess",
    is_flag=True,
    help="Feed arrays as they are (already normalized); images are only resized.",
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
@accelerator_option()
@json_option
def cli(
    model: str,
    input_path: str,
    output_path: str | None,
    mean: str | None,
    std: str | None,
    no_preprocess: bool,
    top_k: int,
    labels: str | None,
    threads: int | None,
    delegates: tuple[str, ...],
    delegate_options: tuple[str, ...],
    delegate_fallback: bool,
    signature: str | None,
    raw: bool,
    accelerator: str | None,
    as_json: bool,
) -> None:
    """Run MODEL on one input with LiteRT and print the top classes (or the outputs).

    Inputs, arrays as images, are normalized as the model declares (liteship's record, else TFLite
    metadata), as validate and bench do: give raw values (e.g. pixels 0..255). --mean/--std replace the
    declaration; --no-preprocess feeds arrays that are already normalized. Images are also resized.

    \b
    Example:
      liteship run mobilenet.tflite --input cat.jpg --top-k 3
      liteship run model.tflite --input x.npy --output y.npy --json
      liteship run model.tflite --input x.npy --accelerator gpu,cpu
    """
    from liteship.runtime.delegates import DelegateSpec
    from liteship.runtime.predict import predict

    options = _options(delegate_options)
    if options and not delegates:
        raise click.BadParameter("given without --delegate.", param_hint="--delegate-option")
    if output_path:
        _check_output(output_path)
    try:
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
            mean=parse_floats(mean, "--mean"),
            std=parse_floats(std, "--std"),
            preprocess=not no_preprocess,
            accelerator=accelerator,
        )
    except LiteshipError as e:
        _as_flags(e)
        raise
    if output_path:
        _save(report, output_path)
    if as_json:
        emit_json(report)
    else:
        _print(report)


def _check_output(path: str) -> None:
    """Before running: a .npy/.npz path in an existing folder (numpy would append .npy to others)."""
    out = Path(path)
    if out.is_dir():
        raise click.BadParameter(f"{path!r} is a directory; give a file name.", param_hint="--output")
    if out.suffix.lower() not in (".npy", ".npz"):
        raise click.BadParameter(
            f"{path!r} must end in .npy (the first output) or .npz (all outputs).", param_hint="--output"
        )
    if not out.parent.is_dir():
        raise click.BadParameter(
            f"folder {str(out.parent)!r} does not exist; create it first.", param_hint="--output"
        )


def _save(report: PredictionReport, path: str) -> None:
    import numpy as np

    try:
        with open(path, "wb") as f:  # a file object: numpy writes exactly this path
            if path.lower().endswith(".npz"):
                # numpy>=2.1's stub types **kwds against its allow_pickle: bool too; the keys here are
                # array names (passing allow_pickle= would be saved as an array on numpy<2.1).
                np.savez(f, **report.outputs)  # type: ignore[arg-type]
            else:
                np.save(f, next(iter(report.outputs.values())))
    except OSError as e:
        raise DataError(
            f"cannot write the outputs to {path!r}: {e.strerror or e}.", hint="Check the path."
        ) from e
    if not path.lower().endswith(".npz") and len(report.outputs) > 1:
        err_console.print(f"note: saved the first of {len(report.outputs)} outputs; use .npz for all.")
    err_console.print(f"wrote {path}")


MAX_SAMPLES_SHOWN = 10  # rows of a batch shown in the table; --json and --output have them all


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
        samples = sorted({t.sample for t in report.top_k})
        shown = set(samples[:MAX_SAMPLES_SHOWN])
        for t in report.top_k:
            if t.sample not in shown:
                continue
            row = [str(t.rank), str(t.index), t.label or "", f"{t.score:.4f}"]
            table.add_row(*([str(t.sample)] if batched else []), *row)
        console.print(table)
        if len(samples) > len(shown):
            console.print(f"… {len(samples) - len(shown)} more samples not shown (use --json or --output).")
    else:
        for name, arr in report.outputs.items():
            console.print(f"[bold]{name}[/] {arr.dtype}{list(arr.shape)}")
            console.print(str(arr) if arr.size <= 64 else f"min {arr.min():.6g}  max {arr.max():.6g}")
    pre = report.describe_preprocessing()
    if report.accelerator is not None:
        placed = f"accelerator: {report.accelerator} (fully accelerated: {report.fully_accelerated})"
    else:
        placed = "delegates: " + (", ".join(d.describe() for d in report.delegates) or "none")
    console.print(
        f"[dim]{report.backend}; input {report.input_shape} (preprocessing: {pre}); "
        f"{report.latency_ms:.2f} ms; {placed}[/]"
    )
