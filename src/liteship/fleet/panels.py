"""Dashboard panels: a running rollout's candidate vs control, and drift over time per model.

HTML fragments with inline SVG (:mod:`liteship.fleet.charts`); the page is :mod:`liteship.fleet.dashboard`.
"""

from __future__ import annotations

import html
import math
import time
from typing import Any

from sqlalchemy.orm import Session

from liteship.fleet import aggregate, crud
from liteship.fleet import rollout as machine
from liteship.fleet.charts import (
    CANDIDATE,
    CONTROL,
    PALETTE,
    Band,
    Series,
    histogram_overlay,
    legend,
    line_chart,
)
from liteship.fleet.decisions import ArmStats
from liteship.fleet.drift import ALERT, WARN
from liteship.fleet.models import Release, Rollout, RolloutPublic, RolloutState

e = html.escape
TIMELINE_POINTS = 30  # about this many periods per chart


def _period(span_s: float) -> float:
    """Seconds per point: whole minutes, so that the span gives about :data:`TIMELINE_POINTS`."""
    return max(60.0, math.ceil(span_s / TIMELINE_POINTS / 60.0) * 60.0)


def _bar(value: float, need: float) -> str:
    share = 1.0 if need <= 0 else min(1.0, value / need)
    cls = "done" if share >= 1 else "todo"
    return f'<span class="bar"><span class="{cls}" style="width:{share * 100:.0f}%"></span></span>'


def eta(done: float, need: float, elapsed_s: float) -> str:
    """When ``need`` is reached at the rate so far ('' when reached; 'no data yet' without a rate)."""
    if done >= need:
        return ""
    if done <= 0 or elapsed_s <= 0:
        return " (no data yet)"
    left = (need - done) / (done / elapsed_s)
    when = f"{left / 60:.0f} min" if left < 7200 else f"{left / 3600:.1f} h"
    return f" (≈ {when} at the current rate)"


def progress(numbers: dict[str, Any], elapsed_s: float = 0.0) -> str:
    """'candidate 6,909/500 predictions, 1/10 devices' per arm, with bars and when predictions suffice."""
    rows = []
    for arm in ("control", "candidate"):
        p = numbers.get("progress", {}).get(arm)
        if not p:
            continue
        rows.append(
            f'<li class="{arm}"><b>{arm}</b> {p["predictions"]:,}/{p["min_predictions"]:,} predictions '
            f"{_bar(p['predictions'], p['min_predictions'])}{eta(p['predictions'], p['min_predictions'], elapsed_s)} "
            f"{p['devices']:,}/{p['min_devices']:,} devices "
            f"{_bar(p['devices'], p['min_devices'])}</li>"
        )
    return f'<ul class="progress">{"".join(rows)}</ul>'


def _pct(v: Any) -> str:
    return "—" if v is None else f"{v:.2%}"


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v:.2f} ms"


def stats_table(numbers: dict[str, Any]) -> str:
    """The engine's numbers side by side, with each check's threshold and result."""
    ctrl, cand, t = numbers.get("control", {}), numbers.get("candidate", {}), numbers.get("thresholds", {})
    checks = numbers.get("checks", {})

    def check(name: str) -> str:
        state = checks.get(name)
        return f'<span class="badge {"halt" if state == "worse" else "ok"}">{state}</span>' if state else "—"

    ratio = numbers.get("latency_p95_ratio")
    rows = [
        (
            "predictions",
            f"{ctrl.get('predictions', 0):,}",
            f"{cand.get('predictions', 0):,}",
            f"≥ {t.get('min_predictions', 0):,.0f}",
            "",
        ),
        (
            "devices",
            str(ctrl.get("devices", 0)),
            str(cand.get("devices", 0)),
            f"≥ {t.get('min_devices', 0):,.0f}",
            "",
        ),
        ("mean confidence", _num(ctrl.get("confidence_mean")), _num(cand.get("confidence_mean")), "", ""),
        (
            "confidence (Mann-Whitney)",
            "",
            f"p={_num(numbers.get('p_value'))}, δ={_num(numbers.get('cliffs_delta'))}",
            f"p < {t.get('alpha')} and δ ≤ -{t.get('confidence_effect_floor')}",
            check("confidence"),
        ),
        ("confidence PSI vs control", "", _num(numbers.get("psi")), f"≥ {t.get('psi_max')}", check("psi")),
        (
            "latency p95",
            _ms(ctrl.get("latency_p95_ms")),
            _ms(cand.get("latency_p95_ms")) + (f" ({ratio:.2f}×)" if ratio is not None else ""),
            f"> {t.get('latency_p95_ratio_max')}×",
            check("latency_p95"),
        ),
        (
            "error rate",
            _pct(ctrl.get("error_rate")),
            _pct(cand.get("error_rate")),
            f"+{_pct(t.get('error_rate_increase_max'))}",
            check("error_rate"),
        ),
        (
            "rollback rate (devices)",
            _pct(ctrl.get("rollback_rate")),
            _pct(cand.get("rollback_rate")),
            f"+{_pct(t.get('rollback_rate_increase_max'))}",
            check("rollback_rate"),
        ),
        ("device reverts", str(ctrl.get("reverts", 0)), str(cand.get("reverts", 0)), "", ""),
        (
            "windows skipped (out of bounds)",
            str(ctrl.get("skipped_windows", 0)),
            str(cand.get("skipped_windows", 0)),
            "",
            "",
        ),
    ]
    body = "".join(
        f"<tr><th>{e(name)}</th><td>{a}</td><td>{b}</td><td>{e(th)}</td><td>{c}</td></tr>"
        for name, a, b, th, c in rows
    )
    check_head = "check (preview: below the minimum sample)" if numbers.get("waiting_for") else "check"
    return (
        '<table class="stats"><thead><tr><th></th><th class="control">control</th>'
        f'<th class="candidate">candidate</th><th>halts when</th><th>{check_head}</th></tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.3g}"


def timelines(
    session: Session,
    rollout: Rollout,
    control: Release,
    candidate: Release,
    now: float,
    until: float | None = None,
) -> str:
    """Latency p95, error rate and reverts per period since the rollout started (until it ended, for a
    finished one), one line per arm."""
    period = _period((until or now) - rollout.created_at)
    arms = {}
    for name, rel in (("control", control), ("candidate", candidate)):
        since = rollout.created_at
        windows = crud.windows_for(
            session, model_id=rollout.model_id, version=rel.version, since=since, until=until
        )
        reverts = crud.reverts_for(
            session, model_id=rollout.model_id, version=rel.version, since=since, until=until
        )
        arms[name] = aggregate.arm_timeline(windows, reverts, period_s=period)
    colors = {"control": CONTROL, "candidate": CANDIDATE}

    def chart(label: str, field: str, unit: str, scale: float = 1.0, **kw: Any) -> str:
        series = [
            Series(
                name,
                [(p.start, None if getattr(p, field) is None else getattr(p, field) * scale) for p in pts],
                colors[name],
            )
            for name, pts in arms.items()
        ]
        chart = line_chart(series, label=label, y_unit=unit, period_s=period, **kw)
        return f"<figure><figcaption>{e(label)}</figcaption>{chart}</figure>"

    return (
        '<div class="charts">'
        + chart("latency p95 per period", "latency_p95_ms", " ms")
        + chart("error rate per period", "error_rate", " %", 100.0, y_min_top=1.0)
        + chart("device reverts per period", "reverts", "", y_min_top=1.0)
        + chart("predictions per period", "predictions", "")
        + f'</div><p class="muted">One point per {period / 60:.0f} min since the rollout started'
        + (f", until it ended at {_utc(until)}" if until is not None else "")
        + ".</p>"
    )


def group_table(pub: RolloutPublic) -> str:
    """Per hardware group (the candidate's variants, issue 24): devices per arm, halted or not, and
    what the engine says for the group now."""
    if not pub.groups:
        return ""
    rows = []
    for name, g in sorted(pub.groups.items()):
        state = "halted" if g.get("halted") else (g.get("next") or {}).get("action", pub.state)
        why = "; ".join((g.get("next") or {}).get("reasons", []))
        rows.append(
            f'<tr data-group="{e(name)}"><td>{e(name)}</td><td>{g.get("candidate", 0)}</td>'
            f'<td>{g.get("control", 0)}</td><td><span class="badge {e(state)}">{e(state)}</span></td>'
            f"<td>{e(why)}</td></tr>"
        )
    return (
        f'<table class="groups"><caption>Per hardware group (a worse group halts the '
        f"{'group only' if pub.halt_scope == 'group' else 'whole release'})</caption>"
        "<thead><tr><th>Group (variant)</th><th>Candidate devices</th><th>Control devices</th>"
        f"<th>State</th><th>Why</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def rollout_panel(
    session: Session, rollout: Rollout, pub: RolloutPublic, now: float, *, latest: bool = False
) -> str:
    """Candidate vs control for an active rollout: what the engine sees, will do, and why. A finished
    rollout that is its model's ``latest`` keeps its arm panels, as they were when it ended, with its
    final verdict; older finished ones show their decisions only."""
    stages = " → ".join(
        f"<b>{s:g} %</b>" if i == pub.stage_index else f"{s:g} %" for i, s in enumerate(pub.stages)
    )
    decisions = "".join(
        f"<li><time>{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(d.at))}</time> "
        f'<span class="badge {e(d.action)}">{e(d.action)}</span> by {e(d.by)}: {e("; ".join(d.reasons))}</li>'
        for d in reversed(pub.decisions[-8:])
    )
    head = (
        f'<section class="rollout" id="rollout-{pub.id}" data-state="{e(pub.state)}"><h3>Rollout {pub.id}: {e(pub.model_id)} '
        f"{e(pub.control_version)} → {e(pub.candidate_version)} "
        f'<span class="badge {e(pub.state)}">{e(pub.state)}</span></h3><p>Stages: {stages}</p>'
        + group_table(pub)
    )
    control = session.get(Release, rollout.control_release_id)
    candidate = session.get(Release, rollout.candidate_release_id)
    assert control is not None and candidate is not None
    if not RolloutState(pub.state).active:
        if not latest:
            return head + f"<ul class=decisions>{decisions or '<li>No decision yet.</li>'}</ul></section>"
        return (
            head
            + finished_arms(session, rollout, pub, control, candidate, now)
            + f"<ul class=decisions>{decisions or '<li>No decision yet.</li>'}</ul></section>"
        )
    ctrl_arm, cand_arm = machine.arms_now(session, rollout=rollout)
    nxt = pub.next or {"action": "wait", "reasons": [], "numbers": {}}
    verb = "pauses (no automatic decision)" if pub.state == RolloutState.PAUSED else nxt["action"]
    plan = "".join(
        f"<tr{' class=current' if p['stage'] - 1 == pub.stage_index else ''}><td>{p['stage']}</td><td>{p['percent']:g} %</td>"
        f"<td>{p['candidate_devices']}</td><td>{p['control_devices']}</td><td>{e(p['note'])}</td></tr>"
        for p in pub.plan
    )
    warnings = "".join(f'<p class="warning" role="alert">{e(w)}</p>' for w in pub.warnings)
    return (
        head
        + actions(pub)
        + warnings
        + f'<div class="next"><b>Next:</b> <span class="badge {e(nxt["action"])}">{e(verb)}</span> '
        f"{e('; '.join(nxt['reasons']))}</div>"
        + progress(nxt["numbers"], now - rollout.stage_started_at)
        + '<div class="side">'
        + f"<figure><figcaption>top-1 confidence, this stage</figcaption>{_hist(ctrl_arm, cand_arm)}"
        + legend(
            [("control " + pub.control_version, CONTROL), ("candidate " + pub.candidate_version, CANDIDATE)]
        )
        + "</figure>"
        + stats_table(nxt["numbers"])
        + "</div>"
        + timelines(session, rollout, control, candidate, now)
        + '<details><summary>Stage plan (devices per arm)</summary><table class="plan"><thead><tr><th>stage</th>'
        "<th>percent</th><th>candidate</th><th>control</th><th></th></tr></thead>"
        f"<tbody>{plan}</tbody></table></details>"
        + f"<ul class=decisions>{decisions or '<li>No decision yet.</li>'}</ul></section>"
    )


def finished_arms(
    session: Session, rollout: Rollout, pub: RolloutPublic, control: Release, candidate: Release, now: float
) -> str:
    """A finished rollout's arms as they were when it ended: its final verdict, the numbers of the last
    decision that had any, the last stage's confidence histograms and the timelines up to its end."""
    ended = rollout.updated_at
    final = pub.decisions[-1] if pub.decisions else None
    numbers = next((d.numbers for d in reversed(pub.decisions) if d.numbers.get("control")), {})
    since = rollout.stage_started_at
    # at 100 % the control's figures came from the whole rollout, as the engine's did
    control_since = rollout.created_at if rollout.stages[rollout.stage_index] >= 100 else since
    arms = []
    for rel, start in ((control, control_since), (candidate, since)):
        windows = crud.windows_for(
            session, model_id=rollout.model_id, version=rel.version, since=start, until=ended
        )
        arms.append(aggregate.arm_stats(windows))
    verdict = (
        f'<span class="badge {e(final.action)}">{e(final.action)}</span> by {e(final.by)} at '
        f"{_utc(final.at)}: {e('; '.join(final.reasons))}"
        if final is not None
        else "no decision recorded"
    )
    return (
        f'<div class="final" data-finished="{e(pub.state)}"><b>Finished</b> ({e(pub.state)}) — final verdict: '
        f"{verdict}</div>"
        + '<div class="side">'
        + f"<figure><figcaption>top-1 confidence, last stage ({pub.stages[pub.stage_index]:g} %), until the "
        f"end</figcaption>{_hist(arms[0], arms[1])}"
        + legend(
            [("control " + pub.control_version, CONTROL), ("candidate " + pub.candidate_version, CANDIDATE)]
        )
        + "</figure>"
        + (stats_table(numbers) if numbers else '<p class="empty">No engine numbers were recorded.</p>')
        + "</div>"
        + timelines(session, rollout, control, candidate, now, until=ended)
    )


def actions(pub: RolloutPublic) -> str:
    """The buttons of an active rollout (form posts to the dashboard's own action route)."""
    names = ["evaluate", "pause" if pub.state == RolloutState.RUNNING else "resume", "promote", "abort"]
    return (
        '<div class="actions">'
        + "".join(
            f'<form method="post" action="/dashboard/rollouts/{pub.id}/{n}"><button type="submit" name="do" '
            f'value="{n}">{n.capitalize()}</button></form>'
            for n in names
        )
        + "</div>"
    )


def _hist(control: ArmStats, candidate: ArmStats) -> str:
    return histogram_overlay(
        control.confidence_hist, candidate.confidence_hist, label="confidence histograms"
    )


def drift_panel(series: list[dict[str, Any]], model_id: str, period_s: float = 3600.0) -> str:
    """One chart per model: PSI per period (``period_s``, the one :func:`aggregate.drift_series` used)
    over time, a line per version, with the warn and alert bands."""
    lines, items, notes = [], [], []
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        points = [(p["start"], p["psi"]) for p in s["points"] if p["psi"] is not None]
        if not s["has_reference"]:
            notes.append(
                f"{s['version']}: {s.get('predictions', 0):,} live predictions; {aggregate.NO_REFERENCE}."
            )
            continue
        if not points:
            notes.append(f"{s['version']}: no period with ≥ 500 predictions yet.")
            continue
        lines.append(Series(s["version"], points, color))
        last = [p for p in s["points"] if p["psi"] is not None][-1]
        items.append(
            f'<li><i style="background:{color}"></i>{e(model_id)} {e(s["version"])} — latest PSI {last["psi"]:.3f} '
            f'<span class="badge {last["level"]}">{last["level"]}</span></li>'
        )
        if s.get("versus_control") and s.get("note"):  # the field judged it worse than its reference
            items.append(
                f"<li>{e(model_id)} {e(s['version'])} — {e(s['note'])} "
                f'<span class="badge {e(s["latest_level"])}">{e(s["latest_level"])}</span></li>'
            )
    chart = ""
    if lines:
        bands = [Band(WARN, ALERT, "#d97706", "warn"), Band(ALERT, None, "#dc2626", "alert")]
        chart = line_chart(
            lines,
            label=f"drift of {model_id}",
            bands=bands,
            y_min_top=0.3,
            period_s=period_s,
            width=620,
            height=190,
        )
        chart += f'<p class="muted">PSI per {period_s / 60:.0f} min period (UTC).</p>'
    note_html = "".join(f'<p class="empty">{e(model_id)} {e(n)}</p>' for n in notes)
    breakdown = "".join(variant_drift_table(model_id, s) for s in series)
    return (
        f'<figure class="drift"><figcaption>{e(model_id)}</figcaption>{chart}'
        f'<ul class="legend">{"".join(items)}</ul>{note_html}{breakdown}</figure>'
    )


def variant_drift_table(model_id: str, s: dict[str, Any]) -> str:
    """A multi-variant release's drift per variant (issue 24): each variant's latest PSI against its own
    reference (its package's histogram, else the release's), beside the release-level figure."""
    if not s.get("variants"):
        return ""
    rows = []
    for v in s["variants"]:
        judged = [p for p in v["points"] if p["psi"] is not None]
        psi = f"{judged[-1]['psi']:.3f}" if judged else "–"
        level = v["latest_level"]
        rows.append(
            f'<tr data-variant="{e(v["variant"])}" data-level="{e(level)}"><td>{e(v["variant"])}'
            f"{' (default)' if v.get('default') else ''}</td><td>{e(v.get('reference') or 'none')}</td>"
            f"<td>{v['predictions']:,}</td><td>{psi}</td>"
            f'<td><span class="badge {e(level)}">{e(level)}</span></td><td>{e(v.get("note") or "")}</td></tr>'
        )
    return (
        f'<table class="variants" id="drift-variants-{e(model_id)}-{e(s["version"])}"><caption>'
        f"{e(model_id)} {e(s['version'])} per variant (release: {e(s['latest_level'])})</caption>"
        "<thead><tr><th>Variant</th><th>Reference</th><th>Predictions</th><th>Latest PSI</th>"
        f"<th>Level</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
