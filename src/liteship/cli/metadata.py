"""``liteship metadata show|write``: standard TFLite Metadata (as tflite-support writes it) for any .tflite."""

from __future__ import annotations

from typing import Any

import click

from liteship.cli._common import console, emit_json, err_console, json_option, parse_floats
from liteship.errors import LiteshipError

# write_metadata's messages name its parameters; users of this command know the flags.
_FLAGS = {
    "input_mean": "--mean",
    "input_std": "--std",
    "input_min": "--input-min",
    "input_max": "--input-max",
    "output_min": "--output-min",
    "output_max": "--output-max",
    "input_names": "--input-name",
    "input_descriptions": "--input-description",
    "output_names": "--output-name",
    "output_descriptions": "--output-description",
    "color_space": "--color-space",
    "score_threshold": "--score-threshold",
}


def _as_flags(e: LiteshipError) -> None:
    """Rewrite ``e``'s message and hint in terms of this command's flags."""
    import re

    pattern = re.compile(r"\b(" + "|".join(_FLAGS) + r")\b(=)?")

    def sub(text: str | None) -> str | None:
        return None if text is None else pattern.sub(lambda m: _FLAGS[m[1]] + (" " if m[2] else ""), text)

    e.message, e.hint = sub(e.message) or "", sub(e.hint)
    e.args = (e.message if not e.hint else f"{e.message} {e.hint}",)


@click.group(name="metadata")
def cli() -> None:
    """Show or write standard TFLite metadata: names, labels, normalization, descriptions.

    The format is tflite-support's (a TFLITE_METADATA buffer plus zipped associated files), read by
    MediaPipe, Android tooling and tflite-support itself.
    """


@cli.command(name="show")
@click.argument("model", metavar="MODEL")
@json_option
def show_cmd(model: str, as_json: bool) -> None:
    """Show the TFLite metadata of MODEL.

    --json prints the metadata exactly as tflite-support's MetadataDisplayer does.

    \b
    Example:
      liteship metadata show mobilenet.tflite --json
    """
    from liteship.model.metadata import metadata_report

    report = metadata_report(model)
    if as_json:
        emit_json(report.metadata)
    else:
        _render(report)


@cli.command(name="write")
@click.argument("model", metavar="MODEL")
@click.option("-o", "--output", required=True, metavar="OUT.tflite", help="Where to write the model.")
@click.option("--name", default=None, help="Model name.")
@click.option("--version", "model_version", default=None, help="Model version, e.g. 1.2.0.")
@click.option("--description", default=None, help="What the model does.")
@click.option("--author", default=None, help="Who made the model.")
@click.option("--license", "license_", default=None, help="The model's license.")
@click.option("--labels", default=None, metavar="FILE", help="Labels file, one class per line (zipped in).")
@click.option("--mean", default=None, metavar="M[,M...]", help="Input normalization mean: (x - mean) / std.")
@click.option("--std", default=None, metavar="S[,S...]", help="Input normalization std.")
@click.option(
    "--color-space",
    type=click.Choice(["rgb", "grayscale"], case_sensitive=False),
    default=None,
    help="Color space of an image input. Defaults to the channel count.",
)
@click.option("--input-name", "input_names", multiple=True, help="Input name (repeat, in model order).")
@click.option("--input-description", "input_descriptions", multiple=True, help="Input description (repeat).")
@click.option("--output-name", "output_names", multiple=True, help="Output name (repeat, in model order).")
@click.option(
    "--output-description", "output_descriptions", multiple=True, help="Output description (repeat)."
)
@click.option("--input-min", default=None, metavar="V[,V...]", help="Input 0 minimum value(s).")
@click.option("--input-max", default=None, metavar="V[,V...]", help="Input 0 maximum value(s).")
@click.option("--output-min", default=None, metavar="V[,V...]", help="Output 0 minimum value(s).")
@click.option("--output-max", default=None, metavar="V[,V...]", help="Output 0 maximum value(s).")
@click.option(
    "--score-threshold", type=float, default=None, help="Recommended score threshold on the labelled output."
)
@json_option
def write_cmd(
    model: str,
    output: str,
    name: str | None,
    model_version: str | None,
    description: str | None,
    author: str | None,
    license_: str | None,
    labels: str | None,
    mean: str | None,
    std: str | None,
    color_space: str | None,
    input_names: tuple[str, ...],
    input_descriptions: tuple[str, ...],
    output_names: tuple[str, ...],
    output_descriptions: tuple[str, ...],
    input_min: str | None,
    input_max: str | None,
    output_min: str | None,
    output_max: str | None,
    score_threshold: float | None,
    as_json: bool,
) -> None:
    """Write TFLite metadata into MODEL, replacing any it had, and save it as OUT.

    \b
    Example:
      liteship metadata write digits.tflite -o digits_md.tflite --name digits \\
          --labels labels.txt --mean 0 --std 1 --author "ACME" --license Apache-2.0
    """
    from liteship.model.metadata import metadata_report, write_metadata

    try:
        data = write_metadata(
            model,
            output,
            name=name,
            version=model_version,
            description=description,
            author=author,
            license=license_,
            labels=labels,
            input_mean=parse_floats(mean, "--mean"),
            input_std=parse_floats(std, "--std"),
            color_space=color_space,
            input_names=input_names or None,
            input_descriptions=input_descriptions or None,
            output_names=output_names or None,
            output_descriptions=output_descriptions or None,
            input_min=parse_floats(input_min, "--input-min"),
            input_max=parse_floats(input_max, "--input-max"),
            output_min=parse_floats(output_min, "--output-min"),
            output_max=parse_floats(output_max, "--output-max"),
            score_threshold=score_threshold,
        )
    except LiteshipError as e:
        _as_flags(e)
        raise
    report = metadata_report(data)
    if as_json:
        emit_json(report.metadata)
    else:
        _render(report)
        err_console.print(f"wrote {output} ({len(data):,} bytes)")


def _render(report: Any) -> None:
    from rich.table import Table

    md = report.metadata
    where = report.path or "model"
    if not md:
        console.print(f"{where}: no TFLite metadata (no TFLITE_METADATA entry).", soft_wrap=True)
        console.print("[dim]Add it with `liteship metadata write`.[/]")
        return
    head = Table(title=f"TFLite metadata: {where}", title_justify="left", show_header=False, box=None)
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    for key in ("name", "version", "description", "author", "license", "min_parser_version"):
        if key in md:
            head.add_row(key, str(md[key]))
    console.print(head)
    for si, sub in enumerate(md.get("subgraph_metadata", [])):
        for side in ("input", "output"):
            tensors = sub.get(f"{side}_tensor_metadata", [])
            if not tensors:
                continue
            table = Table(title=f"subgraph {si} {side}s", title_justify="left")
            for col in ("#", "name", "content", "processing", "stats", "files"):
                table.add_column(col, overflow="fold")
            for i, t in enumerate(tensors):
                table.add_row(
                    str(i),
                    t.get("name", ""),
                    _content(t.get("content", {})),
                    "\n".join(_unit(u) for u in t.get("process_units", [])),
                    _stats(t.get("stats", {})),
                    "\n".join(
                        f"{f.get('name')} ({f.get('type', 'UNKNOWN')})" for f in t.get("associated_files", [])
                    ),
                )
            console.print(table)
            # Descriptions are prose: printed under the table so the columns stay readable.
            for i, t in enumerate(tensors):
                if t.get("description"):
                    console.print(f"  [dim]{i} {t.get('name', '')}:[/] {t['description']}")
    if report.files:
        files = ", ".join(f"{n} ({size:,} bytes)" for n, size in report.files.items())
        console.print(f"associated files: {files}")
    if report.missing_files:
        console.print(f"[bold yellow]warning:[/] named but not zipped onto the model: {report.missing_files}")


def _content(content: dict[str, Any]) -> str:
    kind = content.get("content_properties_type", "").removesuffix("Properties")
    props = content.get("content_properties", {})
    detail = ", ".join(f"{k}={v}" for k, v in props.items())
    return f"{kind} ({detail})" if detail else kind


def _unit(unit: dict[str, Any]) -> str:
    opts = unit.get("options", {})
    if unit.get("options_type") == "NormalizationOptions":
        return f"normalize mean={opts.get('mean')} std={opts.get('std')}"
    detail = ", ".join(f"{k}={v}" for k, v in opts.items() if not isinstance(v, list))
    return f"{unit.get('options_type', '?')} {detail}".strip()


def _stats(stats: dict[str, Any]) -> str:
    if not stats:
        return ""
    return f"min={stats.get('min', '-')} max={stats.get('max', '-')}"
