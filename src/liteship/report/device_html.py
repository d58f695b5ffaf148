"""The report.html sections of the device stages: the selection on device latency
(:mod:`liteship.pipeline.device_select`: workstation and device p50 side by side, per variant and per
device), the device validation gate (:mod:`liteship.pipeline.device_gate`: workstation and device
accuracy figures side by side, per hardware group) and the release variants the per-group choice made."""

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


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _db(v: Any) -> str:
    return "–" if v is None else f"{v:.1f}"


def render_validation_section(gate: Any, variants: list[Any]) -> str:
    """The device validation gate: per hardware group and variant, the workstation's and the group's
    worst device figures (top-1 agreement, accuracy, SQNR) and verdicts side by side, and the group's
    choice. ``gate`` is a :class:`liteship.pipeline.device_gate.DeviceGate`, ``variants`` the report's
    :class:`~liteship.pipeline.report.VariantResult` rows."""
    ws = {v.recipe: v for v in variants}
    rows = []
    for g in gate.groups:
        for recipe, ws_pass in g.workstation.items():
            v, fig = ws.get(recipe), g.figures.get(recipe) or {}
            dev = g.device.get(recipe)
            verdict = "–" if dev is None else ("pass" if dev else "FAIL")
            why = "; ".join(g.excluded.get(recipe, []))
            chosen = recipe == g.chosen
            rows.append(
                f"<tr{' class=chosen' if chosen else ''}><td>{escape(g.group)}</td>"
                f"<td>{escape(recipe)}{' ★' if chosen else ''}</td>"
                f"<td>{_pct(getattr(v, 'agreement_top1', None))}</td><td>{_pct(fig.get('top1_min'))}</td>"
                f"<td>{_pct(getattr(v, 'accuracy', None))}</td><td>{_pct(fig.get('accuracy_min'))}</td>"
                f"<td>{_db(getattr(v, 'sqnr_db', None))}</td><td>{_db(fig.get('sqnr_db_min'))}</td>"
                f'<td class="{"pass" if ws_pass else "fail"}">{"pass" if ws_pass else "FAIL"}</td>'
                f'<td class="{"pass" if dev else "fail"}" title="{escape(why)}">{verdict}</td></tr>'
            )
    groups = "".join(
        f"<li><b>{escape(g.group)}</b> ({escape(', '.join(g.devices))}): "
        + (escape(g.chosen) if g.chosen else '<span class="fail">no variant passes</span>')
        + "</li>"
        for g in gate.groups
    )
    gates = ", ".join(f"{escape(k)} = {escape(v)}" for k, v in gate.gates.items()) or "none"
    flag = '<p class="fail"><b>not gated on devices (fallback)</b></p>' if gate.fallback else ""
    table = (
        '<table id="device-validation"><thead><tr><th>group</th><th>variant</th>'
        "<th>top-1 agreement workstation</th><th>device (worst)</th><th>accuracy workstation</th>"
        "<th>device (worst)</th><th>SQNR dB workstation</th><th>device (worst)</th>"
        f"<th>gates workstation</th><th>gates device</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else ""
    )
    return (
        f'\n<section id="device-validation-gate"><h2>Validation on devices</h2>{flag}'
        f"<p>job <code>{escape(gate.job_id or '–')}</code>, gates {gates}: {escape(gate.message)}</p>{table}"
        f"{f'<h3>Chosen per hardware group</h3><ul>{groups}</ul>' if groups else ''}</section>\n"
    )


def render_release_variants(variants: list[Any]) -> str:
    """The release's variants (:class:`liteship.pipeline.report.ReleaseVariant`): name, pipeline variant,
    conditions, groups and package, with the one command that publishes them together."""
    if not variants:
        return ""

    def when(conditions: list[dict[str, Any]]) -> str:
        return " or ".join("+".join([*c.get("machine", []), *c.get("isa", [])]) for c in conditions)

    rows = "".join(
        f"<tr><td>{escape(v.name)}{' (default)' if v.default else ''}</td><td>{escape(v.recipe)}</td>"
        f"<td>{escape(when(v.when) or 'any device')}</td><td>{escape(', '.join(v.groups) or '–')}</td>"
        f"<td>{'<code>' + escape(v.package['path']) + '</code>' if v.package else '–'}</td></tr>"
        for v in variants
    )
    paths = [v.package["path"] for v in variants if v.package]
    cmd = f"<p>Publish: <code>liteship fleet publish {escape(' '.join(paths))}</code></p>" if paths else ""
    return (
        '\n<section id="release-variants"><h2>Release variants</h2><p>The hardware groups chose different '
        "variants: one signed package per variant, selected on each device by its conditions (the default "
        "runs where none holds).</p>"
        '<table id="release-variants-table"><thead><tr><th>variant</th><th>pipeline variant</th><th>when</th>'
        f"<th>groups</th><th>package</th></tr></thead><tbody>{rows}</tbody></table>{cmd}</section>\n"
    )


TOP_OPS = 15


def render_profile_section(profile: Any) -> str:
    """The per-op profile of the shipped variant(s) on the devices: per device and variant, the whole
    model's figures, a chart of the slowest ops and their table (``profile`` is a
    :class:`liteship.pipeline.device_profile.DeviceProfile`)."""

    def ms(v: Any, digits: int = 3) -> str:
        return "–" if v is None else f"{v:.{digits}f}"

    parts = []
    for r in profile.rows:
        title = f"<h3>{escape(r.recipe)} on {escape(r.device_id)}</h3>"
        if not r.ok:
            parts.append(f'{title}<p class="fail">{escape(r.error or "failed")}</p>')
            continue
        total = r.ops_total_ms or 0.0
        top = r.ops[:TOP_OPS]
        chart = bar_chart(
            [f"#{o.get('index')} {o.get('op')} ({o.get('ran_on')})" for o in top],
            [float(o.get("ms") or 0.0) for o in top],
            title=f"slowest ops of {r.recipe} on {r.device_id}",
            value_label="ms",
            width=640,
        )
        rows = "".join(
            f"<tr><td>{escape(o.get('index'))}</td><td>{escape(o.get('op'))}</td><td>{escape(o.get('ran_on'))}</td>"
            f"<td>{ms(o.get('ms'), 4)}</td><td>{(float(o.get('ms') or 0.0) / total if total else 0.0):.1%}</td></tr>"
            for o in top
        )
        rss = f"{r.peak_rss_bytes / 2**20:.1f} MiB" if r.peak_rss_bytes else "–"
        parts.append(
            f"{title}<p>load {ms(r.load_ms)} ms · first inference {ms(r.first_inference_ms)} ms · invoke "
            f"{ms(r.invoke_ms)} ms (ops total {ms(r.ops_total_ms)} ms) · peak RSS {rss} · {len(r.ops)} ops"
            + (f", {r.delegated_nodes} taken by XNNPACK" if r.delegated_nodes is not None else "")
            + f'</p><div class="charts"><div class="card">{chart}</div></div>'
            f'<table class="ops"><thead><tr><th>#</th><th>op</th><th>ran on</th><th>ms</th><th>share</th></tr>'
            f"</thead><tbody>{rows}</tbody></table>"
        )
    flag = '<p class="fail"><b>no profile (fallback)</b></p>' if profile.fallback else ""
    return (
        f'\n<section id="device-profile"><h2>Profile on devices</h2>{flag}<p>job <code>'
        f"{escape(profile.job_id or '–')}</code>: {escape(profile.message)} Each op is timed alone (a one-op "
        f"model, same threads and XNNPACK); fusion across ops is not shown (docs/device-jobs.md).</p>"
        f"{''.join(parts)}</section>\n"
    )


__all__ = [
    "HTML_BEGIN",
    "HTML_END",
    "render_profile_section",
    "render_release_variants",
    "render_section",
    "render_validation_section",
]
