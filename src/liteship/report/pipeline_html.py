"""The pipeline's self-contained ``report.html``: no network, inline SVG charts, readable tables."""

from __future__ import annotations

import math
from typing import Any

from liteship.report.charts import (
    PALETTE,
    Plot,
    bar_chart,
    draw_axes,
    escape,
    fmt,
    histogram,
    nice_ticks,
    svg_open,
)
from liteship.report.device_html import (
    render_profile_section,
    render_release_variants,
    render_section,
    render_validation_section,
)
from liteship.report.pareto import pareto_front

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{margin-bottom:0}.sub{color:#666;margin-top:4px}
table{border-collapse:collapse;margin:12px 0;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:5px 9px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
tr.chosen{background:#eaf6ea;font-weight:600}.pass{color:#1a7f37}.fail{color:#c62828}
.charts{display:flex;flex-wrap:wrap;gap:16px}.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px}
"""


def _n(v: Any, digits: int = 3, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}{unit}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def tradeoff_chart(variants: list[Any], chosen: str | None, *, width: int = 560, height: int = 340) -> str:
    """Latency (x) vs accuracy or agreement (y); circle area ∝ model size; Pareto front joined by a line.

    The latency axis is logarithmic when the variants span more than 20× (int16x8's reference kernels
    are ~100× slower than the rest, which would squash every other point into one corner).
    """
    use_acc = any(v.accuracy is not None for v in variants)
    pts = [
        (v.recipe, v.p50_ms, (v.accuracy if use_acc else v.agreement_top1), v.size_bytes or 0)
        for v in variants
        if v.ok and v.p50_ms and (v.accuracy if use_acc else v.agreement_top1) is not None
    ]
    y_name = "accuracy" if use_acc else "top-1 agreement"
    if not pts:
        return f"<p>No variant has both latency and {y_name}.</p>"
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    log = hi / lo > 20
    title = (
        f"p50 latency vs {y_name} (area ∝ size; line: Pareto front; † quick{'; log scale' if log else ''})"
    )
    if log:
        xt = [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
        tx = math.log10
        x_ticks = [tx(t) for t in xt]
    else:
        xt = nice_ticks(0, hi * 1.1, 5)
        tx = float
        x_ticks = xt
    ylo, yhi = min(p[2] for p in pts), max(p[2] for p in pts)
    pad = max((yhi - ylo) * 0.15, 0.002)
    yt = nice_ticks(ylo - pad, min(1.0, yhi + pad) if yhi <= 1 else yhi + pad, 5)
    p = Plot(width, height, x_ticks[0], x_ticks[-1], yt[0], yt[-1])
    parts = svg_open(width, height, title) + draw_axes(p, [], yt, "p50 latency (ms)", y_name)
    base = p.height - p.bottom
    for t in xt:  # x ticks drawn here so a log axis is labelled with latencies, not logarithms
        x = p.x(tx(t))
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" stroke="#555"/>')
        parts.append(f'<text x="{x:.1f}" y="{base + 15}" text-anchor="middle" fill="#555">{fmt(t)}</text>')
    # a pruned variant (†) got a quick benchmark and a short validation: its figures are not comparable,
    # so it is drawn hollow and kept off the front
    pruned = {v.recipe for v in variants if getattr(v, "pruned", None)}
    front = set(pareto_front([(n, x, y) for n, x, y, _ in pts if n not in pruned]))
    line = sorted((tx(x), y) for n, x, y, _ in pts if n in front)
    if len(line) > 1:
        d = " ".join(f"{p.x(x):.1f},{p.y(y):.1f}" for x, y in line)
        parts.append(f'<polyline points="{d}" fill="none" stroke="{PALETTE[2]}" stroke-dasharray="4 3"/>')
    biggest = max(s for *_, s in pts) or 1
    placed: list[tuple[float, float]] = []
    for i, (name, x, y, size) in enumerate(pts):
        r = 4 + 14 * math.sqrt(size / biggest)
        cx, cy = p.x(tx(x)), p.y(y)
        color = PALETTE[1] if name == chosen else PALETTE[i % 2 * 4]
        ring = ' stroke="#000" stroke-width="2"' if name in front else ""
        fill = (
            f'fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="3 2"'
            if name in pruned
            else (f'fill="{color}" fill-opacity="0.7"{ring}')
        )
        quick = " (quick benchmark, short validation)" if name in pruned else ""
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" {fill}><title>{escape(name)}: {fmt(x)} ms, '
            f"{fmt(y)}, {size / 1024:.1f} KiB{quick}</title></circle>"
        )
        ly = cy + 4
        while any(abs(ly - py) < 12 and abs(cx - px) < 90 for px, py in placed):
            ly += 12  # points on top of each other: stack their labels instead of overprinting
        placed.append((cx, ly))
        parts.append(
            f'<text x="{cx + r + 3:.1f}" y="{ly:.1f}">{escape(name)}{" †" if name in pruned else ""}'
            f"{' ★' if name == chosen else ''}</text>"
        )
    return "".join(parts) + "</svg>"


def _input_ceiling(mp: Any) -> str:
    """The inputs' own limit: the float model on the integer inputs' grid (pipeline/accuracy_repair.py)."""
    c = getattr(mp, "input_ceiling", None)
    if c is None:
        return ""
    verdict = (
        "<span class=pass>passes</span>"
        if c.passed
        else f"<span class=fail>fails</span> ({escape('; '.join(c.failures))})"
    )
    io = (
        f" The repair's variants therefore take <b>{escape(mp.io_type)}</b> model I/O."
        if getattr(mp, "io_type", None)
        else ""
    )
    return (
        f"<p id='input-ceiling'>The float model fed its inputs rounded to the {escape(c.input_type)} input grid "
        f"(the best any {escape(c.input_type)}-input variant can do): agreement {_pct(c.agreement)}, accuracy "
        f"{_pct(c.accuracy)}, SQNR {_n(c.sqnr_db, 1)} dB — {verdict} the accuracy gates.{io}</p>"
    )


def repair_section(mp: Any) -> str:
    """Accuracy repair: graph fixes tried, every search round, and what the result costs."""
    if mp is None:
        return ""
    ceiling = _input_ceiling(mp)
    if mp.skipped:
        return f"<h2>Accuracy repair</h2><p>{escape(mp.skipped)}</p>{ceiling}"
    parts = ["<h2>Accuracy repair</h2>", ceiling]
    if mp.recipe:
        floats = ", ".join(f"<code>{escape(n.split(';')[0])}</code>" for n in mp.float_layers) or "none"
        parts.append(
            f"<p id='repair-verdict'><b>{escape(mp.recipe)}</b> passes the accuracy gates with "
            f"{len(mp.float_layers)} op(s) in float: {floats}.</p>"
        )
    else:
        parts.append('<p id="repair-verdict" class="fail">No repair passes the accuracy gates.</p>')
    if mp.attempts:
        rows = "".join(
            f"<tr><td>{escape(a.variant)}</td><td>{escape(' + '.join(a.fixes))}</td><td>{_pct(a.accuracy)}</td>"
            f"<td>{_pct(a.agreement)}</td><td>{_n(a.sqnr_db, 1)}</td>"
            f"<td>{'<span class=pass>pass</span>' if a.passed else escape(a.error or 'fail')}</td></tr>"
            for a in mp.attempts
        )
        parts.append(
            "<h3>Graph fixes (no float layer)</h3><table id='fixes'><thead><tr><th>variant</th>"
            "<th>fixes</th><th>accuracy</th><th>agreement</th><th>SQNR dB</th><th>gates</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>"
        )
    c = mp.cost
    if c:
        parts.append(
            f"<p>Cost: {c.float_layers} float op(s); p50 {_n(c.p50_ms)} ms "
            f"(×{_n(c.latency_vs_int8, 2)} of full int8, ×{_n(c.latency_vs_float32, 2)} of float32); size "
            f"{_n((c.size_bytes or 0) / 1024, 1)} KiB (×{_n(c.size_vs_int8, 2)} of int8, "
            f"×{_n(c.size_vs_float32, 2)} of float32); {escape(c.recovered_metric or '')} recovered "
            f"{_n(c.accuracy_recovered, 2)} points.</p>"
        )
    s = mp.search
    if s and s.get("rounds"):
        parts.append(
            f"<h3>Search</h3><p>{escape(s['label'])} — metric <code>{escape(s['metric'])}</code>, "
            f"{s['probed']} of {s['total_ops']} ops measured one by one, {len(s['rounds'])} rounds, "
            f"{s['seconds']:.1f} s.</p>"
        )
        round_rows = []
        for rd in s["rounds"]:
            m = rd["measurement"]
            best = ' class="chosen"' if rd["index"] == s.get("best_round") else ""
            round_rows.append(
                f"<tr{best}><td>{rd['index']}</td><td>{escape(rd['phase'])}</td>"
                f"<td>{escape((rd['layer'] or '–').split(';')[0])}</td><td>{len(rd['float_layers'])}</td>"
                f"<td>{_n(rd['effect'], 3)}</td><td>{_pct(m['accuracy'])}</td><td>{_pct(m['agreement'])}</td>"
                f"<td>{_n(m['sqnr_db'], 1)}</td><td>{_n(m['p50_ms'])}</td>"
                f"<td>{_n((m['size_bytes'] or 0) / 1024, 1)}</td>"
                f"<td>{'<span class=pass>pass</span>' if m['passed'] else 'fail'}</td></tr>"
            )
        parts.append(
            "<table id='rounds'><thead><tr><th>round</th><th>step</th><th>layer</th><th>float ops</th>"
            "<th>effect</th><th>accuracy</th><th>agreement</th><th>SQNR dB</th><th>p50 ms</th>"
            f"<th>KiB</th><th>gate</th></tr></thead><tbody>{''.join(round_rows)}</tbody></table>"
        )
    elif s and s.get("error"):
        parts.append(f"<p class='fail'>Search failed: {escape(s['error'])}</p>")
    return "".join(parts)


def dagger(v: Any) -> str:
    return f' <span title="{escape(v.pruned)}">†</span>' if v.pruned else ""


def _where(v: Any) -> str:
    """Where a pair ran: the Interpreter, or what the accelerator compiled for (and whether all of it)."""
    if v.accelerator is None:
        return "Interpreter"
    if v.ran_on is None:
        return f'<span class="fail" title="{escape(v.error or "")}">{escape(v.accelerator)}: not available</span>'
    part = "" if v.fully_accelerated or v.ran_on == "cpu" else " (partly)"
    return f"{escape(v.ran_on)}{part}"


def render_pipeline_html(report: Any) -> str:
    """The whole page for a :class:`~liteship.pipeline.report.PipelineReport`."""
    r = report
    rows = []
    pairs = [*r.variants, *r.accelerator_pairs]  # every (variant, accelerator) pair; Interpreter first
    picked = (r.chosen, r.chosen_accelerator)
    for v in pairs:
        chosen_row = (v.recipe, v.accelerator) == picked
        cls = ' class="chosen"' if chosen_row else ""
        verdict = (
            '<span class="pass">pass</span>'
            if v.gates_passed
            else f'<span class="fail" title="{escape("; ".join(v.failures))}">fail</span>'
        )
        rows.append(
            f"<tr{cls}><td>{escape(v.label)}{' ★' if chosen_row else ''}{dagger(v)}</td>"
            f"<td>{_where(v)}</td>"
            f"<td>{_n((v.size_bytes or 0) / 1024, 1) if v.size_bytes else '–'}</td>"
            f"<td>{_n(v.ratio_to_float32, 2)}</td><td>{_n(v.p50_ms)}</td><td>{_n(v.p95_ms)}</td>"
            f"<td>{_n(v.p99_ms)}</td><td>{_pct(v.accuracy)}</td><td>{_n(v.accuracy_drop, 2)}</td>"
            f"<td>{_pct(v.agreement_top1)}</td><td>{_n(v.sqnr_db, 1)}</td><td>{verdict}</td></tr>"
        )
    failures = "".join(
        f"<li><b>{escape(v.label)}</b>: {escape('; '.join(v.failures))}</li>" for v in pairs if v.failures
    )
    pruned = "".join(
        f"<li><b>{escape(v.recipe)}</b> †: {escape(v.pruned)}</li>" for v in r.variants if v.pruned
    )
    pruned = f"<h3>Not fully measured</h3><ul>{pruned}</ul>" if pruned else ""
    lat_charts = "".join(
        f'<div class="card">{histogram(v.latency_samples_ms, bins=30, title=f"{v.recipe} latency", x_label="ms", markers=[("p50", v.p50_ms), ("p99", v.p99_ms)] if v.p50_ms is not None and v.p99_ms is not None else [])}</div>'
        for v in r.variants
        if v.latency_samples_ms
    )
    size_chart = bar_chart(
        [v.recipe for v in r.variants if v.size_bytes],
        [v.size_bytes / 1024 for v in r.variants if v.size_bytes],
        title="model size",
        value_label="KiB",
    )
    layer_chart = ""
    if r.layerwise:
        top = r.layerwise[:15]
        layer_chart = (
            "<h2>Per-layer quantization error</h2><p>Worst first; the top layers are the ones kept "
            "in float by accuracy-aware mixed precision.</p>"
            + bar_chart(
                [row["name"] for row in top],
                [max(row.get("score") or 0.0, 0.0) for row in top],
                title="per-layer error (scale-normalized RMSE)",
                value_label="error",
                width=760,
            )
        )
    mixed = repair_section(r.mixed_precision)
    pkg = ""
    if r.package:
        pkg = (
            f"<p>Package: <code>{escape(r.package['path'])}</code> (sha256 "
            f"<code>{escape(r.package['sha256'][:16])}…</code>, {r.package['size'] / 1024:.1f} KiB, signed)</p>"
        )
    chosen = (
        f"Shipping <b>{escape(r.chosen)}</b>"
        + (f" on <b>{escape(r.chosen_accelerator)}</b>" if r.chosen_accelerator else "")
        + f" ({escape(r.objective)} objective, latency at "
        f"{r.selection_threads} thread(s))."
        if r.chosen
        else '<b class="fail">No variant passes the gates; nothing was packaged.</b>'
    )
    gates = ", ".join(f"{escape(k)} = {escape(v)}" for k, v in r.gates.items() if v is not None)
    stages = ", ".join(f"{escape(k)} {v:.1f} s" for k, v in r.stage_seconds.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>liteship report: {escape(r.model_id)} {escape(r.version)}</title>
<style>{CSS}</style></head><body>
<h1>{escape(r.model_id)} {escape(r.version)}</h1>
<p class="sub">source <code>{escape(r.source)}</code> · {len(r.variants)} variants{f" · {len(r.accelerator_pairs)} accelerator pairs" if r.accelerator_pairs else ""} · {r.total_seconds:.1f} s ({stages})</p>
<p id="verdict">{chosen}</p>{pkg}
<p>Gates: {gates or "none"}</p>
<h2>Variants</h2>
<table id="variants"><thead><tr><th>variant</th><th>runs on</th><th>size KiB</th><th>× float32</th><th>p50 ms</th><th>p95 ms</th>
<th>p99 ms</th><th>accuracy</th><th>drop (pts)</th><th>agreement</th><th>SQNR dB</th><th>gates</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{f"<h3>Gate failures</h3><ul>{failures}</ul>" if failures else ""}
{pruned}
<h2>Trade-off</h2><div class="charts"><div class="card">{tradeoff_chart(r.variants, r.chosen)}</div>
<div class="card">{size_chart}</div></div>
{mixed}{layer_chart}
<h2>Latency distributions</h2><div class="charts">{lat_charts}</div>
{render_section(r.device_selection) if r.device_selection is not None else ""}
{render_validation_section(r.device_validation, r.variants) if r.device_validation is not None else ""}
{render_release_variants(r.release_variants)}
{render_profile_section(r.device_profile) if r.device_profile is not None else ""}</body></html>
"""


__all__ = ["render_pipeline_html", "tradeoff_chart"]
