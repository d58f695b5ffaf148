"""Server-rendered SVG charts for the dashboard (no scripts): overlaid histograms and line charts with
shaded bands. Every label is escaped; every coordinate is finite (inputs are checked aggregates)."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

e = html.escape
CONTROL, CANDIDATE = "#2563eb", "#ea580c"
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#be123c")


@dataclass(frozen=True)
class Series:
    """One line: ``points`` are ``(x, y)``; y None leaves a gap."""

    name: str
    points: Sequence[tuple[float, float | None]]
    color: str


@dataclass(frozen=True)
class Band:
    """A shaded horizontal band ``[low, high)`` of the y axis (high None: to the top)."""

    low: float
    high: float | None
    color: str
    label: str


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def histogram_overlay(
    control: Sequence[float], candidate: Sequence[float], *, label: str, width: int = 460, height: int = 170
) -> str:
    """Two histograms on the same bins over [0, 1], each as fractions of its own total, overlaid."""
    pad_l, pad_b, pad_t = 36, 24, 10
    inner_w, inner_h = width - pad_l - 8, height - pad_b - pad_t
    fractions = []
    for counts in (control, candidate):
        total = float(sum(counts))
        fractions.append([c / total for c in counts] if total > 0 else [0.0] * len(counts))
    top = max(max(f, default=0.0) for f in fractions) or 1.0
    n = max(len(control), len(candidate), 1)
    bw = inner_w / n
    parts = [
        f'<svg class="chart" role="img" aria-label="{e(label)}" width="{width}" height="{height}">',
        f'<line x1="{pad_l}" x2="{pad_l}" y1="{pad_t}" y2="{pad_t + inner_h}" stroke="#999"/>',
        f'<line x1="{pad_l}" x2="{pad_l + inner_w}" y1="{pad_t + inner_h}" y2="{pad_t + inner_h}" stroke="#999"/>',
        f'<text x="2" y="{pad_t + 10}">{top:.0%}</text>',
    ]
    for i in range(0, n + 1, max(1, n // 4)):
        x = pad_l + i * bw
        parts.append(f'<text x="{x - 8:.1f}" y="{height - 6}">{i / n:.2g}</text>')
    for name, frac, color in (("control", fractions[0], CONTROL), ("candidate", fractions[1], CANDIDATE)):
        for i, f in enumerate(frac):
            h = inner_h * f / top
            parts.append(
                f'<rect class="{name}" x="{pad_l + i * bw + 1:.1f}" y="{pad_t + inner_h - h:.1f}" '
                f'width="{max(bw - 2, 1):.1f}" height="{h:.1f}" fill="{color}" fill-opacity="0.45">'
                f"<title>{name}: {f:.1%} in [{i / n:.2f}, {(i + 1) / n:.2f})</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: Sequence[Series],
    *,
    label: str,
    y_unit: str = "",
    bands: Sequence[Band] = (),
    y_min_top: float = 0.0,
    period_s: float | None = None,
    width: int = 460,
    height: int = 170,
) -> str:
    """Lines over time (x = UNIX seconds) with shaded bands; a single point is drawn as a dot.

    With ``period_s``, each x is the start of a period of that length: the point sits in the middle of
    its period and the axis runs from the first period's start to the last one's end, labelled with
    those times (UTC; with the date when the span crosses midnight), so a single hour of telemetry reads
    ``10:00 … 11:00`` rather than the minute around its start.
    """
    pad_l, pad_r, pad_b, pad_t = 44, 10, 24, 10
    inner_w, inner_h = width - pad_l - pad_r, height - pad_b - pad_t
    shift = period_s / 2 if period_s else 0.0
    xs = [x for s in series for x, y in s.points if y is not None]
    ys = [y for s in series for _, y in s.points if y is not None]
    if not xs:
        return f'<p class="empty">{e(label)}: no data yet.</p>'
    x0, x1 = min(xs), max(xs)
    if period_s:
        x1 += period_s
    elif x1 - x0 < 1:
        x0, x1 = x0 - 30, x1 + 30
    dated = time.gmtime(x0)[:3] != time.gmtime(x1)[:3]
    top = max([*ys, y_min_top, *(b.low for b in bands)]) * 1.15 or 1.0

    def px(x: float) -> float:
        return pad_l + inner_w * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return pad_t + inner_h - inner_h * min(y, top) / top

    parts = [f'<svg class="chart" role="img" aria-label="{e(label)}" width="{width}" height="{height}">']
    for b in bands:
        y_hi = py(b.high if b.high is not None else top)
        parts.append(
            f'<rect class="band" x="{pad_l}" y="{y_hi:.1f}" width="{inner_w}" height="{py(b.low) - y_hi:.1f}" '
            f'fill="{b.color}" fill-opacity="0.12"><title>{e(b.label)}</title></rect>'
            f'<text x="{pad_l + inner_w - 4}" y="{py(b.low) - 3:.1f}" text-anchor="end" fill="{b.color}">{e(b.label)}</text>'
        )
    parts += [
        f'<line x1="{pad_l}" x2="{pad_l}" y1="{pad_t}" y2="{pad_t + inner_h}" stroke="#999"/>',
        f'<line x1="{pad_l}" x2="{pad_l + inner_w}" y1="{pad_t + inner_h}" y2="{pad_t + inner_h}" stroke="#999"/>',
        f'<text x="2" y="{pad_t + 10}">{_fmt(top)}{e(y_unit)}</text><text x="2" y="{pad_t + inner_h}">0</text>',
        f'<text class="axis-start" x="{pad_l}" y="{height - 6}">{_clock(x0, dated)}</text>',
        f'<text class="axis-end" x="{pad_l + inner_w}" y="{height - 6}" text-anchor="end">'
        f"{_clock(x1, dated)} UTC</text>",
    ]

    def when(x: float) -> str:
        return f"{_clock(x, dated)}–{_clock(x + period_s, dated)}" if period_s else _clock(x, dated)

    for s in series:
        runs: list[list[tuple[float, float]]] = [[]]
        for x, y in s.points:
            if y is None or not math.isfinite(y):
                runs.append([])
            else:
                runs[-1].append((px(x + shift), py(y)))
        for run in runs:
            if len(run) > 1:
                pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(f'<polyline fill="none" stroke="{s.color}" stroke-width="2" points="{pts}"/>')
        for x, y in s.points:
            if y is not None and math.isfinite(y):
                parts.append(
                    f'<circle cx="{px(x + shift):.1f}" cy="{py(y):.1f}" r="2.5" fill="{s.color}">'
                    f"<title>{e(s.name)} {when(x)}: {_fmt(y)}{e(y_unit)}</title></circle>"
                )
    parts.append("</svg>")
    return "".join(parts)


def legend(items: Sequence[tuple[str, str]]) -> str:
    """A row of colour swatches with names (HTML)."""
    return (
        '<p class="legend">'
        + " ".join(f'<span><i style="background:{color}"></i>{e(name)}</span>' for name, color in items)
        + "</p>"
    )


def _clock(t: float, dated: bool = False) -> str:
    return time.strftime("%m-%d %H:%M" if dated else "%H:%M", time.gmtime(t))
