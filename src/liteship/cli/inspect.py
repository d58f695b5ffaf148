"""``liteship inspect MODEL.tflite``: what a model contains and where it can run (no TensorFlow needed)."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from liteship.cli._common import console, emit_json, json_option
from liteship.model.inspect import InspectReport, inspect_model
from liteship.model.targets import TARGET_NAMES, TargetVerdict
from liteship.types import TensorSpec

_COLORS = {"ok": "green", "partial": "yellow", "blocked": "red"}


@click.command(name="inspect")
@click.argument("model", metavar="MODEL.tflite")
@click.option(
    "--target",
    "targets",
    multiple=True,
    type=click.Choice([*TARGET_NAMES, "all"], case_sensitive=False),
    help="Judge deployability on this target (repeat, or 'all'): which ops block it and why.",
)
@click.option(
    "--probe",
    is_flag=True,
    help="For gpu and cpu, compile the model with the real accelerator (LiteRT CompiledModel) and report "
    "what ran there, instead of judging from the rule table. Other targets stay on the rules.",
)
@json_option
def cli(model: str, targets: tuple[str, ...], probe: bool, as_json: bool) -> None:
    """Describe MODEL.tflite: inputs/outputs, signatures, ops, weights, quantization, metadata.

    Reads the flatbuffer directly; works on any valid .tflite, whoever made it.

    \b
    Examples:
      liteship inspect model.tflite
      liteship inspect model.tflite --target edgetpu --target gpu
      liteship inspect model.tflite --target all --json
      liteship inspect model.tflite --target gpu --probe

    Each verdict says whether it was probed (compiled here) or comes from the rules.
    """
    report = inspect_model(model, targets=targets or None, probe=probe)
    if as_json:
        emit_json(report)
        return
    _render(report, detailed_targets=bool(targets))


def _render(r: InspectReport, detailed_targets: bool) -> None:
    size = f"{r.file_bytes:,} bytes"
    console.print(f"[bold]{escape(r.path or 'model')}[/]  {size}  kind: [bold]{r.kind}[/]")
    runtime = r.min_runtime_version or "not recorded"
    console.print(
        f"schema v{r.schema_version}  {escape(r.description) or '-'}  min runtime: {escape(runtime)}  "
        f"subgraphs: {len(r.subgraphs)}  tensors: {r.tensor_count}  parameters: {r.parameter_count:,}"
    )
    for line in r.legacy:
        console.print(f"legacy file: {escape(line)}")
    console.print(_io_table(r))
    if r.signatures:
        console.print(_signature_table(r))
    console.print(_ops_table(r))
    _render_weights(r)
    _render_metadata(r)
    for w in r.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    if detailed_targets:
        for v in r.targets:
            _render_target(v)
    else:
        verdicts = "  ".join(
            f"{v.target} [{_COLORS[v.verdict]}]{v.verdict}[/]{'*' if v.notes else ''}"
            + (" (probed)" if v.basis == "probed" else "")
            for v in r.targets
        )
        starred = "; * has a note" if any(v.notes for v in r.targets) else ""
        console.print(f"[bold]Deployability:[/] {verdicts}  (--target NAME explains{starred})")


def _quant_text(spec: TensorSpec, granularity: str) -> str:
    if granularity == "per-channel":
        return "per-channel"
    if spec.scale is None:
        return "-"
    return f"scale {spec.scale:.6g}, zp {spec.zero_point}"


def _io_table(r: InspectReport) -> Table:
    table = Table(title="Inputs and outputs", title_justify="left")
    for col in ("", "name", "shape", "dtype", "quantization"):
        table.add_column(col)
    for role, specs in (("in", r.inputs), ("out", r.outputs)):
        for s in specs:
            granularity = r.quantization.io.get(s.name, "none")
            shape = "[" + ", ".join(str(d) for d in s.shape) + "]"
            table.add_row(role, escape(s.name), shape, s.dtype, _quant_text(s, granularity))
    return table


def _signature_table(r: InspectReport) -> Table:
    table = Table(title="Signatures", title_justify="left")
    for col in ("key", "subgraph", "inputs", "outputs"):
        table.add_column(col)
    for s in r.signatures:
        table.add_row(
            escape(s.key), str(s.subgraph), escape(", ".join(s.inputs)), escape(", ".join(s.outputs))
        )
    return table


def _ops_table(r: InspectReport) -> Table:
    table = Table(title="Operators", title_justify="left")
    for col, justify in (("op", "left"), ("count", "right"), ("kind", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for category, ops in (("builtin", r.builtin_ops), ("custom", r.custom_ops), ("flex", r.flex_ops)):
        for name, count in ops.items():
            style = "[red]flex[/]" if category == "flex" else category
            table.add_row(escape(name), str(count), style)
    return table


def _render_weights(r: InspectReport) -> None:
    by_dtype = ", ".join(f"{d} {n:,} B" for d, n in r.weight_bytes.items()) or "none"
    console.print(f"[bold]Weights:[/] {by_dtype}")
    q = r.quantization
    low = ", ".join(f"{d} x{n}" for d, n in q.weight_dtypes.items()) or "none"
    console.print(
        f"[bold]Quantization:[/] {q.per_tensor} per-tensor, {q.per_channel} per-channel tensors; "
        f"low-precision weights: {low}"
    )


def _render_metadata(r: InspectReport) -> None:
    entries = ", ".join(f"{escape(m.label)} ({m.size} B)" for m in r.metadata) or "none"
    console.print(f"[bold]Metadata:[/] {entries}")
    files = ", ".join(f"{escape(n)} ({s:,} B)" for n, s in r.associated_files.items()) or "none"
    console.print(f"[bold]Associated files:[/] {files}")


def _render_target(v: TargetVerdict) -> None:
    basis = "probed" if v.basis == "probed" else "from rules"
    placed = f", {v.accelerated_ops}/{v.total_ops} ops on the accelerator" if v.total_ops is not None else ""
    console.print(
        f"[bold]{escape(v.title)}:[/] [{_COLORS[v.verdict]}]{v.verdict}[/] [dim]({basis}{placed})[/]"
    )
    for reason in v.reasons:
        console.print(f"  - {escape(reason)}")
    for note in v.notes:
        console.print(f"  note: {escape(note)}")
    groups: dict[tuple[str, str], list[str]] = {}
    for severity, ops in (("blocks", v.blocking_ops), ("on CPU", v.fallback_ops)):
        for op, why in ops.items():
            groups.setdefault((severity, why), []).append(op)
    if groups:
        table = Table(show_header=True, box=None, padding=(0, 2))
        for col in ("", "ops", "why"):
            table.add_column(col)
        for (severity, why), names in groups.items():
            color = "red" if severity == "blocks" else "yellow"
            table.add_row(f"[{color}]{severity}[/]", escape(", ".join(sorted(names))), escape(why))
        console.print(table)
    label = "source" if v.basis == "probed" else "rules"
    console.print(f"  [dim]{label}: {escape('; '.join(v.sources))}[/]")
