"""The dashboard's device-job pages (admin only, like the dashboard): ``/dashboard/jobs`` lists bench,
validate and profile jobs; ``/dashboard/jobs/{job}`` shows one: figures per device, a validate job's
figures and gate verdict per hardware group, a profile job's slowest ops as a table and a bar chart.
Server-rendered, no scripts; every device string is escaped."""

from __future__ import annotations

import html
import time
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from liteship.fleet import jobs
from liteship.fleet.api.deps import SessionDep, signed_in

router = APIRouter(include_in_schema=False)
e = html.escape
TOP_OPS = 15

STYLE = """body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 68rem; color: #111; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin-bottom: 1rem; }
th, td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid #eee; }
.num { text-align: right; font-variant-numeric: tabular-nums; } .muted { color: #666; }
.pass { background: #dcfce7; } .fail { background: #fee2e2; } .chart text { font-size: 12px; }"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f'<style>{STYLE}</style></head><body><p><a href="/dashboard">dashboard</a> · '
        f'<a href="/dashboard/jobs">device jobs</a></p>{body}</body></html>'
    )


def _n(v: Any, fmt: str = "{:.4g}") -> str:
    return "–" if v is None else e(fmt.format(v))


def _verdict(passed: bool) -> str:
    return '<td class="pass">pass</td>' if passed else '<td class="fail">FAIL</td>'


def ops_chart(ops: list[dict[str, Any]], total: float) -> str:
    """Horizontal bars (SVG) of the slowest ops' median time."""
    top = sorted(ops, key=lambda o: -o["ms"])[:TOP_OPS]
    if not top or top[0]["ms"] <= 0:
        return '<p class="muted">No op timings.</p>'
    peak, h = top[0]["ms"], 22 * len(top) + 8
    parts = [f'<svg class="chart" role="img" aria-label="slowest ops" width="640" height="{h}">']
    for i, o in enumerate(top):
        y, w = 4 + 22 * i, max(2, int(320 * o["ms"] / peak))
        share = o["ms"] / total if total else 0.0
        parts.append(
            f'<text x="0" y="{y + 14}">#{int(o["index"])} {e(str(o["op"]))} ({e(str(o["ran_on"]))})</text>'
            f'<rect x="250" y="{y}" width="{w}" height="16" fill="#3b82f6"><title>{o["ms"]:.4f} ms</title></rect>'
            f'<text x="{256 + w}" y="{y + 14}">{o["ms"]:.3f} ms ({share:.0%})</text>'
        )
    return "".join(parts) + "</svg>"


def _validation(job: Any) -> str:
    rows = []
    for t in job.tasks:
        for r in t.results or []:
            fig = r.get("validation")
            if not r.get("ok") or not isinstance(fig, dict):
                rows.append(f"<tr><td>{e(t.device_id)}</td><td>{e(str(r.get('name')))}</td>"
                            f'<td colspan="7">{e(str(r.get("error") or "no figures"))}</td></tr>')  # fmt: skip
                continue
            agreement = {a["output"]: a for a in fig.get("agreement", [])}
            for o in fig.get("outputs", []):
                a = agreement.get(o["name"], {})
                sqnr = "∞ (identical)" if o.get("identical") else _n(o.get("sqnr_db"), "{:.1f}")
                rows.append(
                    f"<tr><td>{e(t.device_id)}</td><td>{e(str(r['name']))}</td><td>{e(str(o['name']))}</td>"
                    f"<td>{e(str(fig.get('accelerator') or 'cpu'))}</td>"
                    f'<td class="num">{_n(a.get("top1"), "{:.2%}")}</td><td class="num">{_n(a.get("top5"), "{:.2%}")}</td>'
                    f'<td class="num">{_n(o.get("max_abs_error"))}</td><td class="num">{_n(o.get("mean_abs_error"))}</td>'
                    f'<td class="num">{sqnr}</td>{_verdict(bool(fig.get("passed")))}</tr>'
                )
    groups = "".join(
        f'<tr><td>{e(g["group"])}</td><td>{e(g["variant"])}</td><td class="num">{g["answered"]}/{len(g["devices"])}</td>'
        f'<td class="num">{_n(g["top1_min"], "{:.2%}")}</td><td class="num">{_n(g["top5_min"], "{:.2%}")}</td>'
        f'<td class="num">{_n(g["max_abs_error"])}</td>'
        f'<td class="num">{"∞" if g["identical"] else _n(g["sqnr_db_min"], "{:.1f}")}</td>{_verdict(g["passed"])}'
        f"<td>{e('; '.join(g['failures']))}</td></tr>"
        for g in job.groups or []
    )
    head = "<tr><th>device</th><th>variant</th><th>output</th><th>on</th><th>top-1</th><th>top-5</th>" \
        "<th>max abs</th><th>mean abs</th><th>SQNR dB</th><th>gates</th></tr>"  # fmt: skip
    return (
        f'<h2>Per device</h2><table id="validation">{head}{"".join(rows)}</table>'
        '<h2>Per hardware group (worst device)</h2><table id="groups"><tr><th>group</th><th>variant</th>'
        "<th>devices</th><th>top-1 min</th><th>top-5 min</th><th>max abs</th><th>SQNR dB min</th><th>gates</th>"
        f"<th>failures</th></tr>{groups}</table>"
    )


def _profile(job: Any) -> str:
    out = []
    for t in job.tasks:
        for r in t.results or []:
            title = f"<h2>{e(t.device_id)} · {e(str(r.get('name')))}</h2>"
            if not r.get("ok"):
                out.append(f"{title}<p>{e(str(r.get('error')))}</p>")
                continue
            ops = r.get("ops") or []
            total = float(r.get("ops_total_ms") or 0.0)
            rss = (r.get("peak_rss_bytes") or 0) / 2**20
            rows = "".join(
                f'<tr><td class="num">{int(o["index"])}</td><td>{e(str(o["op"]))}</td><td>{e(str(o["ran_on"]))}</td>'
                f'<td class="num">{o["ms"]:.4f}</td><td class="num">{(o["ms"] / total if total else 0):.1%}</td></tr>'
                for o in sorted(ops, key=lambda o: -o["ms"])[:TOP_OPS]
            )
            out.append(
                f"{title}<p>load {_n(r.get('load_ms'))} ms · first inference {_n(r.get('first_inference_ms'))} ms · "
                f"invoke {_n(r.get('invoke_ms'))} ms (ops total {_n(total)} ms) · peak RSS {rss:.1f} MiB · "
                f"{len(ops)} ops, {_n(r.get('delegated_nodes'), '{}')} taken by XNNPACK</p>"
                f'{ops_chart(ops, total)}<table class="ops"><tr><th>#</th><th>op</th><th>ran on</th><th>ms</th>'
                f"<th>share</th></tr>{rows}</table>"
            )
    return "".join(out) or '<p class="muted">No profile yet.</p>'


def _bench(job: Any) -> str:
    rows = "".join(
        f'<tr><td>{e(t.device_id)}</td><td>{e(str(r.get("name")))}</td><td class="num">{_n(r.get("p50_ms"))}</td>'
        f'<td class="num">{_n(r.get("p95_ms"))}</td><td class="num">{_n(r.get("init_ms"))}</td>'
        f"<td>{e(str(r.get('error') or ''))}</td></tr>"
        for t in job.tasks
        for r in t.results or []
    )
    return f"<table><tr><th>device</th><th>variant</th><th>p50 ms</th><th>p95 ms</th><th>init ms</th><th>error</th></tr>{rows}</table>"


def render_job(job: Any) -> str:
    states = "".join(
        f"<tr><td>{e(t.device_id)}</td><td>{e(t.state)}</td><td>{e(t.error or '')}</td></tr>"
        for t in job.tasks
    )
    body = {"validate": _validation, "profile": _profile}.get(job.kind, _bench)(job)
    return _page(
        f"{job.kind} job {job.id}",
        f'<h1>{e(job.kind)} job {e(job.id)}</h1><p class="muted">{e(job.state)} · created '
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(job.created_at))} · variants "
        f"{e(', '.join(v['name'] for v in job.variants))}</p>{body}"
        f"<h2>Devices</h2><table><tr><th>device</th><th>state</th><th>error</th></tr>{states}</table>",
    )


@router.get("/dashboard/jobs", response_class=HTMLResponse, response_model=None)
def jobs_page(request: Request, session: SessionDep) -> HTMLResponse | RedirectResponse:
    if not signed_in(request, session):
        return RedirectResponse("/dashboard/login", status_code=status.HTTP_303_SEE_OTHER)
    rows = "".join(
        f'<tr><td><a href="/dashboard/jobs/{e(j.id)}">{e(j.id)}</a></td><td>{e(j.kind)}</td><td>{e(j.state)}</td>'
        f"<td>{len(j.tasks)}</td><td>{e(', '.join(v['name'] for v in j.variants))}</td></tr>"
        for j in jobs.list_jobs(session, limit=100)
    )
    return HTMLResponse(
        _page(
            "device jobs",
            "<h1>Device jobs</h1><table><tr><th>job</th><th>kind</th><th>state</th>"
            f"<th>devices</th><th>variants</th></tr>{rows}</table>",
        )  # fmt: skip
    )


@router.get("/dashboard/jobs/{job_id}", response_class=HTMLResponse, response_model=None)
def job_page(job_id: str, request: Request, session: SessionDep) -> HTMLResponse | RedirectResponse:
    if not signed_in(request, session):
        return RedirectResponse("/dashboard/login", status_code=status.HTTP_303_SEE_OTHER)
    return HTMLResponse(render_job(jobs.job_public(session, job_id=job_id)))


__all__ = ["router", "render_job", "ops_chart"]
