"""The dashboard: one self-contained HTML page (no scripts, no CDN; charts are inline SVG drawn here).

Shows the fleet, versions per device, rollouts with their stage and decisions, and drift over time.
Admin only: ``Authorization: Bearer <admin token>``, or the dashboard's own session cookie set by the
login form at ``/dashboard/login``: a random value (only its sha256 is stored, in
``dashboard_sessions``), expiring after :data:`SESSION_LIFETIME_S`, HttpOnly, SameSite=Strict, and
accepted by the dashboard's pages and actions only (never by the API).
"""

from __future__ import annotations

import html
import time
from collections import Counter
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from liteship.fleet import aggregate, crud, gallery, panels
from liteship.fleet import rollout as machine
from liteship.fleet.api.deps import COOKIE, SessionDep, is_admin, same_origin, signed_in
from liteship.fleet.api.routes.rollouts import rollout_public
from liteship.fleet.bandwidth import per_release
from liteship.fleet.models import ACTIVE_STATES, Device
from liteship.fleet.profile import health_text, runtime_text
from liteship.fleet.variants import refs, variants_of

router = APIRouter(tags=["dashboard"])
SESSION_LIFETIME_S = 12 * 3600.0
DRIFT_PERIOD_S = 3600.0  # one drift point per hour (the API's default too)
PAGE = Template((Path(__file__).with_name("dashboard.html")).read_text(encoding="utf-8"))
LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>liteship fleet — sign in</title></head>
<body style="font-family:sans-serif;max-width:28rem;margin:4rem auto"><h1>liteship fleet</h1>
<form method="post" action="/dashboard/login"><label>Admin token <input name="token" type="password"
autocomplete="current-password" required></label> <button type="submit">Sign in</button></form>$error</body></html>"""
e = html.escape


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    s = max(0, int(now - t))
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago" if s < 7200 else f"{s // 3600} h ago"


def version_bars(counts: Counter[tuple[str, str]]) -> str:
    """Horizontal bar chart (SVG) of devices per model version."""
    if not counts:
        return '<p class="empty">No device has reported a model yet.</p>'
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = max(counts.values())
    h = 24 * len(rows) + 8
    parts = [f'<svg class="chart" role="img" aria-label="devices per version" width="520" height="{h}">']
    for i, ((model, version), n) in enumerate(rows):
        y, w = 4 + 24 * i, max(2, int(300 * n / top))
        parts.append(
            f'<text x="0" y="{y + 15}">{e(model)} {e(version)}</text>'
            f'<rect x="180" y="{y}" width="{w}" height="18" fill="#3b82f6"><title>{n} devices</title></rect>'
            f'<text x="{186 + w}" y="{y + 15}">{n}</text>'
        )
    return "".join(parts) + "</svg>"


def _device_row(row: dict[str, Any], now: float) -> str:
    d: Device = row["device"]
    return (
        f"<tr><td>{e(d.id)}</td><td>{e(d.model_id or '—')}</td><td>{e(d.model_version or '—')}</td>"
        f"<td>{_variant_cell(d.variant, row.get('assigned_variant'))}</td>"
        f"<td>{e(runtime_text(d.runtime))}</td><td>{e(health_text(d.health, row['reverts']))}</td>"
        f"<td>{_ago(d.last_seen, now)}</td></tr>"
    )


def _variant_cell(running: str | None, assigned: str | None) -> str:
    if running == assigned:
        return e(running or "—")
    return f"{e(running or '—')} → {e(assigned or '—')}"


def _bytes_cell(t: Any) -> str:
    if t is None:
        return "—"
    return f"{t.bytes:,} B by {t.devices} device{'s' if t.devices != 1 else ''} ({t.bytes_per_device:,.0f} B each)"


def variants_section(session: Any, devices: list[Device]) -> str:
    """One table per multi-variant release: variant, default, conditions, devices running it now."""
    out = []
    for model, releases, _ in crud.list_models(session):
        by_release = variants_of(session, [r.id for r in releases])
        moved = {t.target: t for t in per_release(session, model_id=model.id)}
        for rel in releases:
            rows = by_release.get(rel.id)
            if not rows:
                continue
            running = Counter(
                d.variant for d in devices if d.model_id == model.id and d.model_version == rel.version
            )
            body = "".join(
                f"<tr><td>{e(ref.name)}</td><td>{'yes' if ref.variant.default else ''}</td>"
                f"<td>{e(ref.variant.describe())}</td><td>{running.get(ref.name, 0)}</td>"
                f"<td>{_bytes_cell(moved.get(ref.target_path))}</td>"
                f"<td><code>{e(ref.sha256[:12])}</code></td></tr>"
                for ref in refs(rows)
            )
            out.append(
                f'<table class="variants" id="variants-{e(model.id)}-{e(rel.version)}">'
                f"<caption>{e(model.id)} {e(rel.version)}</caption>"
                "<thead><tr><th>Variant</th><th>Default</th><th>For</th><th>Devices running it</th>"
                f"<th>Downloaded</th><th>sha256</th></tr></thead><tbody>{body}</tbody></table>"
            )
    return "".join(out) or '<p class="empty">No release has variants.</p>'


def render(session: Any) -> str:
    """The page's HTML for the current state of the database."""
    now = time.time()
    listing = crud.device_listing(session)
    devices = [row["device"] for row in listing]
    versions = Counter((d.model_id, d.model_version or "none") for d in devices if d.model_id)
    device_rows = "".join(_device_row(row, now) for row in listing[:500])
    rollout_html, models_seen = [], set()
    for r in crud.list_rollouts(session)[:20]:  # newest first: the first of each model is its latest
        latest = r.model_id not in models_seen
        models_seen.add(r.model_id)
        rollout_html.append(panels.rollout_panel(session, r, rollout_public(session, r), now, latest=latest))
    revert_rows = "".join(
        f"<tr><td><time>{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r.at))}</time></td>"
        f"<td>{e(r.device_id)}</td><td>{e(r.model_id or '—')}</td><td>{e(r.version)} → {e(r.to_version or 'none')}</td>"
        f"<td>{'server' if r.by_server else 'device'}</td><td>{e(r.reason)}</td></tr>"
        for r in crud.list_reverts(session, limit=50)
    )
    drift_html = []
    for model, _, _ in crud.list_models(session):
        series = aggregate.drift_series(session, model_id=model.id, period_s=DRIFT_PERIOD_S)
        # the next step when drift alerts: field capture (liteship.fleet.gallery)
        drift_html.append(
            panels.drift_panel(series, model.id, period_s=DRIFT_PERIOD_S)
            + gallery.drift_action(session, model.id, series)
        )
    seen = sum(1 for d in devices if d.last_seen and now - d.last_seen < 600)
    return PAGE.substitute(
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)),
        n_devices=len(devices),
        n_seen=seen,
        n_rollouts=sum(1 for r in crud.list_rollouts(session) if r.state in ACTIVE_STATES),
        version_chart=version_bars(versions),
        revert_rows=revert_rows or '<tr><td colspan="6">No device has reverted a model.</td></tr>',
        device_rows=device_rows or '<tr><td colspan="7">No devices registered.</td></tr>',
        variants=variants_section(session, devices),
        rollouts="".join(rollout_html) or '<p class="empty">No rollouts.</p>',
        drift="".join(drift_html) or '<p class="empty">No models published.</p>',
    )


@router.get("/dashboard", response_class=HTMLResponse, response_model=None)
def dashboard(request: Request, session: SessionDep) -> HTMLResponse | RedirectResponse:
    """The dashboard page, or a redirect to the login form when not signed in."""
    if not signed_in(request, session):
        return RedirectResponse("/dashboard/login", status_code=status.HTTP_303_SEE_OTHER)
    return HTMLResponse(render(session))


@router.get("/dashboard/login", response_class=HTMLResponse)
def login_form() -> HTMLResponse:
    return HTMLResponse(Template(LOGIN).substitute(error=""))


@router.post("/dashboard/login", response_model=None)
async def login(request: Request, session: SessionDep) -> HTMLResponse | RedirectResponse:
    """Check the admin token from the form; start a dashboard session (its own random cookie)."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0]
    if not is_admin(request.app.state.settings, token):
        page = Template(LOGIN).substitute(error='<p role="alert">Wrong admin token.</p>')
        return HTMLResponse(page, status_code=status.HTTP_401_UNAUTHORIZED)
    value = crud.add_dashboard_session(session, lifetime_s=SESSION_LIFETIME_S)
    session.commit()
    response = RedirectResponse("/dashboard", status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE,
        value,
        httponly=True,
        samesite="strict",
        max_age=int(SESSION_LIFETIME_S),
        path="/dashboard",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/dashboard/logout", response_model=None)
def logout(request: Request, session: SessionDep) -> RedirectResponse:
    """End the dashboard session (the row is deleted, so a copied cookie stops working too)."""
    value = request.cookies.get(COOKIE)
    if value:
        crud.end_dashboard_session(session, value=value)
        session.commit()
    response = RedirectResponse("/dashboard/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


ACTIONS = ("pause", "resume", "abort", "promote", "evaluate")


@router.post("/dashboard/rollouts/{rollout_id}/{action}", response_model=None)
def dashboard_action(
    rollout_id: int, action: str, request: Request, session: SessionDep
) -> RedirectResponse | HTMLResponse:
    """A rollout action from the dashboard's buttons (session cookie), recorded as an admin decision."""
    if not signed_in(request, session):
        return RedirectResponse("/dashboard/login", status_code=status.HTTP_303_SEE_OTHER)
    if not same_origin(request):
        return HTMLResponse("cross-site form post refused.", status_code=status.HTTP_403_FORBIDDEN)
    if action not in ACTIONS:
        return HTMLResponse(f"unknown action {action[:20]!r}.", status_code=status.HTTP_404_NOT_FOUND)
    rollout = crud.get_rollout(session, rollout_id=rollout_id)
    session.refresh(rollout, with_for_update=True)
    if action == "evaluate":
        machine.evaluate_rollout(session, rollout=rollout, record_wait=True)
    else:
        machine.change_rollout(session, rollout=rollout, action=action, by="admin")
    session.commit()
    return RedirectResponse(f"/dashboard#rollout-{rollout_id}", status_code=status.HTTP_303_SEE_OTHER)


INDEX = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>liteship fleet server</title></head>
<body style="font-family:sans-serif;max-width:36rem;margin:4rem auto"><h1>liteship fleet server</h1>
<ul><li><a href="/dashboard">Dashboard</a> (sign in with the admin token)</li>
<li><a href="/api/docs">API documentation</a> (<a href="/api/openapi.json">OpenAPI schema</a>)</li>
<li><a href="/healthz">Health check</a></li></ul>
<p>Devices talk to <code>/api/v1</code> and <code>/tuf</code>; see docs/fleet.md.</p></body></html>"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> HTMLResponse:
    """The server's front page: links to the dashboard and the API docs."""
    return HTMLResponse(INDEX)
