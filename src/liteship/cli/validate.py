"""``liteship validate CANDIDATE --reference SOURCE --data PATH``: compare, gate, explain."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import click

from liteship.cli._accel import accelerator_option
from liteship.cli._common import console, emit_json, json_option, parse_floats, quiet_tensorflow
from liteship.errors import GateFailed
from liteship.types import Preprocessing

if TYPE_CHECKING:
    from liteship.validate import ValidationReport

LAYERS_SHOWN = 15


@click.command(name="validate")
@click.argument("candidate", metavar="CANDIDATE")
@click.option(
    "--reference",
    required=True,
    metavar="SOURCE_OR_TFLITE",
    help="What the candidate should match: .keras/.h5, a SavedModel directory, or a .tflite.",
)
@click.option(
    "--data",
    required=True,
    metavar="PATH",
    help="Image folder (one sub-folder per class gives labels), .npz with x and optional y, or .npy.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, metavar="N", help="Use the first N samples."
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=None,
    metavar="F",
    help="Gate: top-1 agreement of classifier outputs, 0..1.",
)
@click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(min=0),
    default=None,
    metavar="F",
    help="Gate: accuracy drop in percentage points (needs labels).",
)
@click.option(
    "--min-accuracy",
    type=click.FloatRange(0, 1),
    default=None,
    metavar="F",
    help="Gate: the candidate's own top-1 accuracy, 0..1 (needs labels): an absolute floor.",
)
@click.option(
    "--atol", type=click.FloatRange(min=0), default=None, metavar="F", help="Gate: absolute tolerance."
)
@click.option(
    "--rtol", type=click.FloatRange(min=0), default=None, metavar="F", help="Gate: relative tolerance."
)
@click.option("--min-sqnr", type=float, default=None, metavar="DB", help="Gate: SQNR of every output, in dB.")
@click.option(
    "--layerwise", is_flag=True, help="Rank per-layer quantization error (int8 candidate, TF reference)."
)
@click.option(
    "--mean", default=None, metavar="M[,M...]", help="Normalization mean (default: the model's own)."
)
@click.option("--std", default=None, metavar="S[,S...]", help="Normalization std (default: the model's own).")
@accelerator_option(
    "Run the .tflite candidate on LiteRT's CompiledModel API with this accelerator (cpu, gpu, npu, "
    "gpu,cpu, auto) and report its error against the reference; GPU kernels may compute in float16. "
    "The reference may be the same .tflite (then run on the Interpreter). Defaults to the Interpreter."
)
@json_option
def cli(
    candidate: str,
    reference: str,
    data: str,
    limit: int | None,
    min_agreement: float | None,
    max_accuracy_drop: float | None,
    min_accuracy: float | None,
    atol: float | None,
    rtol: float | None,
    min_sqnr: float | None,
    layerwise: bool,
    mean: str | None,
    std: str | None,
    accelerator: str | None,
    as_json: bool,
) -> None:
    """Compare CANDIDATE with its reference on a dataset; a failing gate exits 3.

    Preprocessing is what the candidate declared at conversion unless --mean/--std are given.
    Outputs pair up by name, else in order.

    \b
    Example:
      liteship validate model.tflite --reference model.keras --data val.npz --min-agreement 0.99
      liteship validate model.tflite --reference model.tflite --data val.npz --accelerator gpu
    """
    quiet_tensorflow()
    from liteship.validate import validate

    pre = None
    if mean is not None or std is not None:
        pre = Preprocessing(
            mean=parse_floats(mean, "--mean") or (0.0,), std=parse_floats(std, "--std") or (1.0,)
        )
    report = validate(
        candidate,
        reference,
        data,
        limit=limit,
        preprocessing=pre,
        atol=atol,
        rtol=rtol,
        min_agreement=min_agreement,
        max_accuracy_drop=max_accuracy_drop,
        min_accuracy=min_accuracy,
        min_sqnr=min_sqnr,
        layerwise=layerwise,
        progress=not as_json,
        accelerator=accelerator,
    )
    if as_json:
        emit_json(report)
    else:
        _render(report)
    if not report.passed:
        raise GateFailed(
            f"{len(report.failures)} validation gate(s) failed for {report.candidate} against {report.reference}:",
            failures=report.failures,
            report=report,
        )


def _fmt(v: float | None, spec: str = ".3g") -> str:
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, spec)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _render(r: ValidationReport) -> None:
    from rich.table import Table

    console.print(f"[bold]liteship validate[/] {r.candidate} [dim]({r.candidate_backend})[/]")
    console.print(f"  against {r.reference} [dim]({r.reference_backend})[/]")
    console.print(
        f"  {r.samples} samples from {r.data}{' with labels' if r.has_labels else ''}; "
        f"preprocessing: {r.preprocessing_rule}",
        markup=False,
    )
    t = Table(title="outputs", title_justify="left")
    for col in ("output", "max abs", "mean abs", "p99 abs", "max rel", "cosine", "SQNR dB", "NaN/Inf c|r"):
        left = col == "output"
        t.add_column(
            col, justify="left" if left else "right", overflow="fold", min_width=14 if left else None
        )
    for o in r.outputs:
        name = o.name if o.name == o.reference_name else f"{o.name} ↔ {o.reference_name}"
        t.add_row(
            name, _fmt(o.max_abs_error), _fmt(o.mean_abs_error), _fmt(o.p99_abs_error),
            _fmt(o.max_rel_error), _fmt(o.cosine_similarity, ".6f"), _fmt(o.sqnr_db, ".1f"),
            f"{o.candidate_nan + o.candidate_inf}|{o.reference_nan + o.reference_inf}",
        )  # fmt: skip
    console.print(t)
    if r.agreement:
        t = Table(title="classifier", title_justify="left")
        for col in ("output", "top-1 agree", "top-5 agree", "ref acc", "cand acc", "drop (pts)"):
            t.add_column(col, justify="left" if col == "output" else "right", overflow="fold")
        for a in r.agreement:
            t.add_row(
                a.output, _pct(a.top1), _pct(a.top5), _pct(a.reference_accuracy), _pct(a.candidate_accuracy),
                _fmt(a.accuracy_drop, ".2f"),
            )  # fmt: skip
        console.print(t)
    if r.gates:
        t = Table(title="gates", title_justify="left")
        for col in ("gate", "output", "value", "threshold", "result"):
            t.add_column(col, justify="right" if col in ("value", "threshold") else "left", overflow="fold")
        for g in r.gates:
            verdict = "[green]pass[/]" if g.passed else "[bold red]FAIL[/]"
            t.add_row(g.name, g.output, _fmt(g.value, ".6g"), _fmt(g.threshold, ".6g"), verdict)
        console.print(t)
    if r.layerwise:
        _render_layers(r)
    for note in r.notes:
        console.print(f"[dim]note: {note}[/]")
    if r.gates and r.passed:
        console.print(f"[bold green]passed[/] {len(r.gates)} gate(s)")


def _render_layers(r: ValidationReport) -> None:
    from rich.table import Table

    t = Table(
        title="layerwise quantization error (worst first; keep the top ones in float)", title_justify="left"
    )
    for col in ("#", "tensor", "op", "rmse/scale", "MSE", "max abs"):
        t.add_column(col, justify="left" if col in ("tensor", "op") else "right", overflow="fold")
    for i, s in enumerate(r.layerwise[:LAYERS_SHOWN], 1):
        t.add_row(
            str(i),
            s.name,
            s.op_name,
            _fmt(s.rmse_over_scale),
            _fmt(s.mean_squared_error),
            _fmt(s.max_abs_error),
        )
    console.print(t)
    if len(r.layerwise) > LAYERS_SHOWN:
        console.print(f"[dim]{len(r.layerwise) - LAYERS_SHOWN} more tensors in --json[/]")
