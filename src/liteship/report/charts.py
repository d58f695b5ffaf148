"""Small SVG charts for self-contained HTML reports: histogram, bar chart, scatter with labels.

Pure Python (no numpy, no JavaScript, nothing fetched): each function returns one ``<svg>`` element as a
string, to be inlined in an HTML5 page. The elements carry no ``xmlns`` — the HTML parser puts inline
``<svg>`` in the SVG namespace — so a page holds no URL at all; call :func:`standalone` to get a file
that opens on its own. Every piece of text is escaped.

    >>> svg = histogram([1.0, 1.2, 1.1, 3.0], bins=4, title="latency", x_label="ms")
    >>> svg.startswith("<svg")
    True
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D")
_AXIS = "#555"
_GRID = "#e5e5e5"


def escape(text: object) -> str:
    """``text`` safe inside SVG/HTML element content and attribute values."""
    return html.escape(str(text), quote=True)


def fmt(value: float) -> str:
    """A compact number: ``0.0123``, ``12.3``, ``8,720``, ``1.23e+07``."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    if 1000 <= abs(value) < 1e7:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]`` (steps of 1, 2, 2.5 or 5 × 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(v, 12))
    return ticks


@dataclass
class _Plot:
    """Maps data coordinates to pixels inside the margins of a ``width`` × ``height`` chart."""

    width: int
    height: int
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    left: int = 56
    right: int = 16
    top: int = 30
    bottom: int = 42

    def x(self, v: float) -> float:
        span = (self.x_hi - self.x_lo) or 1.0
        return self.left + (v - self.x_lo) / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        span = (self.y_hi - self.y_lo) or 1.0
        return self.height - self.bottom - (v - self.y_lo) / span * (self.height - self.top - self.bottom)


def _open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title or "chart")}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>" if title else "",
        f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>"
        if title
        else "",
    ]


def _axes(
    p: _Plot, xticks: Sequence[float], yticks: Sequence[float], x_label: str, y_label: str
) -> list[str]:
    out = []
    for t in yticks:
        y = p.y(t)
        out.append(
            f'<line x1="{p.left}" x2="{p.width - p.right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>'
        )
        out.append(f'<text x="{p.left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="{_AXIS}">{fmt(t)}</text>')
    base = p.height - p.bottom
    for t in xticks:
        x = p.x(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" stroke="{_AXIS}"/>')
        out.append(f'<text x="{x:.1f}" y="{base + 15}" text-anchor="middle" fill="{_AXIS}">{fmt(t)}</text>')
    out.append(f'<line x1="{p.left}" x2="{p.width - p.right}" y1="{base}" y2="{base}" stroke="{_AXIS}"/>')
    out.append(f'<line x1="{p.left}" x2="{p.left}" y1="{p.top}" y2="{base}" stroke="{_AXIS}"/>')
    if x_label:
        mid = (p.left + p.width - p.right) / 2
        out.append(f'<text x="{mid:.1f}" y="{p.height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    if y_label:
        mid = (p.top + base) / 2
        out.append(
            f'<text x="12" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 12 {mid:.1f})">'
            f"{escape(y_label)}</text>"
        )
    return out


def _empty(width: int, height: int, title: str) -> str:
    parts = _open(width, height, title)
    parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="{_AXIS}">no data</text>')
    return "".join(parts) + "</svg>"


def histogram(
    values: Sequence[float],
    *,
    bins: int = 30,
    title: str = "",
    x_label: str = "",
    y_label: str = "count",
    markers: Sequence[tuple[str, float]] = (),
    width: int = 520,
    height: int = 260,
    color: str = PALETTE[0],
) -> str:
    """A histogram of ``values`` with ``bins`` equal-width bins.

    Args:
        values: The data (non-finite values are ignored).
        bins: Number of bins. Defaults to 30.
        title: Chart title. x_label / y_label: axis titles.
        markers: ``(label, x)`` pairs drawn as labelled vertical lines, e.g. ``[("p50", 1.2)]``.
        width / height: Size in pixels.
        color: Bar fill.

    Returns:
        One ``<svg>`` element.
    """
    data = [float(v) for v in values if math.isfinite(v)]
    if not data:
        return _empty(width, height, title)
    lo, hi = min(data), max(data)
    if hi == lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    bins = max(1, bins)
    step = (hi - lo) / bins
    counts = [0] * bins
    for v in data:
        counts[min(int((v - lo) / step), bins - 1)] += 1
    yticks = nice_ticks(0, max(counts), 4)
    p = _Plot(width, height, lo, hi, 0, yticks[-1])
    parts = _open(width, height, title) + _axes(
        p, nice_ticks(lo, hi, 6)[1:-1] or [lo], yticks, x_label, y_label
    )
    for i, c in enumerate(counts):
        if c == 0:
            continue
        x0, x1 = p.x(lo + i * step), p.x(lo + (i + 1) * step)
        y = p.y(c)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
            f'height="{p.y(0) - y:.1f}" fill="{escape(color)}">'
            f"<title>{fmt(lo + i * step)}–{fmt(lo + (i + 1) * step)}: {c}</title></rect>"
        )
    for k, (label, x) in enumerate(markers):
        if not math.isfinite(x):
            continue
        px = p.x(min(max(x, lo), hi))
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{p.top}" y2="{p.y(0):.1f}" '
            f'stroke="{PALETTE[(k + 1) % len(PALETTE)]}" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{px + 3:.1f}" y="{p.top + 10 + 12 * k}" fill="{PALETTE[(k + 1) % len(PALETTE)]}">'
            f"{escape(label)} {fmt(x)}</text>"
        )
    return "".join(parts) + "</svg>"


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    value_label: str = "",
    width: int = 520,
    bar_height: int = 22,
    colors: Sequence[str] = PALETTE,
) -> str:
    """Horizontal bars, one per label, with the value written at the end of each bar.

    Args:
        labels: One label per bar (long labels are shortened with "…", the full text is in a tooltip).
        values: One non-negative value per bar.
        title: Chart title. value_label: Title of the value axis (e.g. "ms").
        width: Width in pixels; the height follows from the number of bars.
        bar_height: Pixels per bar.
        colors: Bar fills, cycled.
    """
    if len(labels) != len(values):
        raise ValueError(f"bar_chart got {len(labels)} labels but {len(values)} values.")
    pairs = [(str(lab), float(v)) for lab, v in zip(labels, values, strict=True) if math.isfinite(v)]
    height = 30 + 42 + bar_height * max(len(pairs), 1)
    if not pairs:
        return _empty(width, height, title)
    ticks = nice_ticks(0, max(v for _, v in pairs) or 1.0, 5)
    p = _Plot(width, height, 0, ticks[-1], 0, len(pairs), left=min(200, width // 3))
    parts = _open(width, height, title) + _axes(p, ticks, [], value_label, "")
    for i, (label, v) in enumerate(pairs):
        y = p.top + i * bar_height + 3
        short = label if len(label) <= 30 else "…" + label[-29:]
        parts.append(
            f'<text x="{p.left - 4}" y="{y + bar_height / 2 + 1:.1f}" text-anchor="end">'
            f"<title>{escape(label)}</title>{escape(short)}</text>"
        )
        parts.append(
            f'<rect x="{p.left}" y="{y:.1f}" width="{max(p.x(v) - p.left, 1):.1f}" '
            f'height="{bar_height - 6}" fill="{escape(colors[i % len(colors)])}"/>'
        )
        parts.append(f'<text x="{p.x(v) + 4:.1f}" y="{y + bar_height / 2 + 1:.1f}">{fmt(v)}</text>')
    return "".join(parts) + "</svg>"


def scatter(
    points: Sequence[tuple[float, float]],
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    highlight: Sequence[int] = (),
    width: int = 520,
    height: int = 320,
    color: str = PALETTE[0],
) -> str:
    """Points ``(x, y)``, each optionally labelled (e.g. size vs accuracy of model variants).

    Args:
        points: The data.
        labels: One label per point, written next to it. Defaults to none.
        title / x_label / y_label: Titles.
        highlight: Indices of points drawn larger in a second colour (e.g. the chosen variant).
        width / height: Size in pixels.
        color: Point fill.
    """
    if labels is not None and len(labels) != len(points):
        raise ValueError(f"scatter got {len(points)} points but {len(labels)} labels.")
    pts = [
        (i, float(x), float(y)) for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)
    ]
    if not pts:
        return _empty(width, height, title)
    xt = nice_ticks(min(x for _, x, _ in pts), max(x for _, x, _ in pts), 5)
    yt = nice_ticks(min(y for _, _, y in pts), max(y for _, _, y in pts), 5)
    p = _Plot(width, height, xt[0], xt[-1], yt[0], yt[-1])
    parts = _open(width, height, title) + _axes(p, xt, yt, x_label, y_label)
    marked = set(highlight)
    for i, x, y in pts:
        big = i in marked
        fill = PALETTE[1] if big else color
        tip = f"{labels[i]}: " if labels is not None else ""
        parts.append(
            f'<circle cx="{p.x(x):.1f}" cy="{p.y(y):.1f}" r="{6 if big else 4}" fill="{escape(fill)}">'
            f"<title>{escape(tip)}({fmt(x)}, {fmt(y)})</title></circle>"
        )
        if labels is not None:
            parts.append(f'<text x="{p.x(x) + 7:.1f}" y="{p.y(y) - 5:.1f}">{escape(labels[i])}</text>')
    return "".join(parts) + "</svg>"


# Building blocks for custom charts (e.g. the pipeline report's trade-off plot). The underscore names
# are kept because code already imports them.
Plot = _Plot
svg_open = _open
draw_axes = _axes


def standalone(svg: str) -> str:
    """An inline ``<svg>`` from this module as a standalone .svg document (adds the SVG namespace)."""
    return svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)


__all__ = [
    "histogram",
    "bar_chart",
    "scatter",
    "standalone",
    "escape",
    "fmt",
    "nice_ticks",
    "PALETTE",
    "Plot",
    "svg_open",
    "draw_axes",
]
