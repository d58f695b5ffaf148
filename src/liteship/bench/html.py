"""The ``liteship bench --html`` page: one self-contained file (inline CSS and SVG, nothing fetched)."""

from __future__ import annotations

import math
from pathlib import Path

from liteship.bench.report import BenchEntry, BenchReport
from liteship.errors import BenchmarkError
from liteship.report.charts import PALETTE, bar_chart, escape, fmt, histogram

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1100px; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: .85rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f4f4f4; }
.muted { color: #666; font-size: .85rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; } figcaption { font-size: .8rem; color: #555; }
"""

# (row title, attribute of BenchEntry) — the rows of the page and of the CLI table
ROWS: list[tuple[str, str]] = [
    ("threads", "threads"),
    ("accelerator", "accelerator"),
    ("inputs", "inputs"),
    ("timed", "timed"),
    ("init (ms)", "init_ms"),
    ("first inference (ms)", "first_inference_ms"),
    ("mean (ms)", "latency.mean_ms"),
    ("std (ms)", "latency.std_ms"),
    ("min (ms)", "latency.min_ms"),
    ("p50 (ms)", "latency.p50_ms"),
    ("p90 (ms)", "latency.p90_ms"),
    ("p95 (ms)", "latency.p95_ms"),
    ("p99 (ms)", "latency.p99_ms"),
    ("max (ms)", "latency.max_ms"),
    ("throughput (inf/s)", "throughput"),
    ("runs", "runs"),
    ("model size (MiB)", "model_size_bytes"),
    ("tensors, activations (KiB)", "tensor_bytes"),
    ("process RSS growth (MiB)", "rss_delta_bytes"),
    ("peak RSS (MiB)", "peak_rss_bytes"),
    ("backend", "backend"),
]


# What the memory rows mean: printed under the CLI table and on the page.
MEMORY_NOTE = (
    "tensors = the model's non-constant tensors at their allocated shapes, from the interpreter (what "
    "its arena holds, at most); process RSS growth = resident memory the entry added to the process, "
    "including the runtime's one-time setup in the first entry; peak RSS = the whole process's high-water mark."
)


def entry_title(e: BenchEntry, name: str | None = None) -> str:
    """``"model.tflite @ 2 threads"`` (``name`` replaces the model's label)."""
    return f"{name or e.model} @ {e.threads} thread{'s' if e.threads != 1 else ''}"


def short_names(entries: tuple[BenchEntry, ...] | list[BenchEntry]) -> list[str]:
    """Each entry's file name when those are unique across models, else its full label."""
    names = [Path(e.model).name if e.path else e.model for e in entries]
    by_name = {n: {e.model for e, n2 in zip(entries, names, strict=True) if n2 == n} for n in names}
    return [n if len(by_name[n]) == 1 else e.model for e, n in zip(entries, names, strict=True)]


def cell(e: BenchEntry, attr: str) -> str:
    """One table cell's text for entry ``e`` (shared by the HTML page and the CLI table)."""
    obj: object = e
    for part in attr.split("."):
        obj = getattr(obj, part)
    if obj is None:
        return "interpreter" if attr == "accelerator" else "–"
    if attr == "tensor_bytes":  # activations of small models are KiB; MiB would print 0.00
        return f"{obj / 2**10:.1f}"  # type: ignore[operator]
    if attr.endswith("_bytes"):
        return f"{obj / 2**20:.2f}"  # type: ignore[operator]
    if isinstance(obj, float):
        return "–" if not math.isfinite(obj) else f"{obj:.1f}" if attr == "throughput" else f"{obj:.3f}"
    return str(obj)


def render_html(report: BenchReport, *, title: str = "liteship bench") -> str:
    """The whole page as a string: summary table, median chart, one latency histogram per entry."""
    entries = report.entries
    head = "".join(f"<th>{escape(entry_title(e))}</th>" for e in entries)
    rows = "".join(
        f"<tr><th>{escape(name)}</th>"
        + "".join(f"<td>{escape(cell(e, attr))}</td>" for e in entries)
        + "</tr>"
        for name, attr in ROWS
    )
    medians = bar_chart(
        [entry_title(e) for e in entries],
        [e.latency.p50_ms for e in entries],
        title="median latency",
        value_label="ms",
    )
    figures = "".join(_figure(i, e) for i, e in enumerate(entries))
    m = report.machine
    machine = ", ".join(f"{k}: {v}" for k, v in m.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="muted">{escape(machine)}<br>at least {report.runs} runs and {fmt(report.min_seconds)} s per entry
after {report.warmup} warm-up runs; {escape(report.timed_note())}<br>{escape(MEMORY_NOTE)}</p>
<table><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table>
<h2>Median latency</h2>
{medians}
<h2>Latency distributions</h2>
<div class="charts">{figures}</div>
</body></html>
"""


def _figure(i: int, e: BenchEntry) -> str:
    lat = e.latency
    svg = histogram(
        e.samples_ms,
        bins=40,
        title=entry_title(e),
        x_label="latency (ms)",
        markers=[("p50", lat.p50_ms), ("p99", lat.p99_ms)],
        color=PALETTE[i % len(PALETTE)],
    )
    caption = (
        f"{lat.count} runs; p50 {fmt(lat.p50_ms)} ms, p99 {fmt(lat.p99_ms)} ms, max {fmt(lat.max_ms)} ms"
    )
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def write_html(report: BenchReport, path: str | Path, *, title: str = "liteship bench") -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path.

    Raises:
        BenchmarkError: ``path`` is a folder or cannot be written.
    """
    out = Path(path)
    if out.is_dir():
        raise BenchmarkError(
            f"cannot write the HTML page to {str(out)!r}: it is a directory.",
            hint=f"Give a file name, e.g. {str(out / 'bench.html')!r}.",
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_html(report, title=title), encoding="utf-8")
    except OSError as e:
        raise BenchmarkError(
            f"cannot write the HTML page to {str(out)!r}: {e.strerror or e}.", hint="Check the path."
        ) from e
    return out


__all__ = ["render_html", "write_html", "entry_title", "short_names", "cell", "ROWS", "MEMORY_NOTE"]
