"""The report.html section of a selection on device latency (:mod:`liteship.pipeline.device_select`):
workstation and device p50 side by side, per variant and per device."""

from __future__ import annotations

from typing import Any

from liteship.report.charts import bar_chart, escape

HTML_BEGIN, HTML_END = "<!-- liteship:device-selection -->", "<!-- /liteship:device-selection -->"


def render_section(sel: Any) -> str:
    """The report.html section: workstation and device p50 side by side, per variant and per device.

    ``sel`` is a :class:`liteship.pipeline.device_select.DeviceSelection` (not imported: the report layer
    sits below the pipeline's).
    """

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    devices = sorted({d for v in sel.variants for d in (*v.devices, *v.errors)})
    head = "".join(f"<th>{escape(d)} p50 ms</th>" for d in devices)
    rows = []
    for v in sel.variants:
        mark = " ★" if v.recipe == sel.chosen else ""
        ws = (
            " (workstation)"
            if v.recipe == sel.workstation_chosen and sel.chosen != sel.workstation_chosen
            else ""
        )
        cells = "".join(
            f"<td>{ms(v.devices[d])}</td>"
            if d in v.devices
            else f'<td title="{escape(v.errors.get(d, ""))}">{"error" if d in v.errors else "–"}</td>'
            for d in devices
        )
        why = "; ".join(sel.failures.get(v.recipe, []))
        rows.append(
            f"<tr{' class=chosen' if mark else ''}><td>{escape(v.recipe)}{mark}{escape(ws)}</td><td>{ms(v.workstation_p50_ms)}</td>"
            f"<td>{ms(v.device_p50_ms)}</td>{cells}<td>{escape(why) or 'pass'}</td></tr>"
        )
    labels, values = [], []
    for v in sel.variants:
        for kind, value in (("workstation", v.workstation_p50_ms), ("device median", v.device_p50_ms)):
            if value is not None:
                labels.append(f"{v.recipe} · {kind}")
                values.append(value)
    chart = bar_chart(
        labels,
        values,
        title="p50 latency: workstation vs device",
        value_label="ms",
        colors=("#4e79a7", "#f28e2b"),
    )
    flag = '<p class="fail"><b>workstation figures (fallback)</b></p>' if sel.fallback else ""
    groups = "".join(
        f"<li><b>{escape(g.group)}</b> ({escape(', '.join(g.devices))}): {escape(g.chosen or 'nothing passes')}</li>"
        for g in sel.groups
    )
    return (
        f'\n{HTML_BEGIN}<section id="device-selection"><h2>Selection on device latency</h2>{flag}'
        f"<p>job <code>{escape(sel.job_id)}</code>: {escape(sel.message)}</p>"
        f'<table id="device-latency"><thead><tr><th>variant</th><th>workstation p50 ms</th><th>device median p50 ms</th>'
        f"{head}<th>gates on device figures</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{f'<h3>Per hardware group</h3><ul>{groups}</ul>' if groups else ''}"
        f'<div class="charts"><div class="card">{chart}</div></div></section>{HTML_END}\n'
    )


__all__ = ["HTML_BEGIN", "HTML_END", "render_section"]
