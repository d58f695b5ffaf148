"""The dashboard's field samples (issue 25): a gallery per model / version / trigger with each sample's
prediction and confidence, a minimal labeling form (the class from the model's label file) and a discard
button; and the drift panel's next step — when a model's drift passes the alert band, an offer to turn
capture on with suggested rules (:func:`suggest_capture`), as a button and as the CLI command.

Same rules as the rest of the dashboard: server-rendered HTML, no scripts, admin session only, form
posts from the page's own origin.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlencode

import numpy as np
from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from liteship.errors import SampleRefused
from liteship.fleet import aggregate, samples
from liteship.fleet.api.deps import SessionDep, same_origin, signed_in
from liteship.fleet.api.routes.samples import start_capture
from liteship.fleet.models import Release
from liteship.fleet.samples_client import ALERT_LEVEL, suggest_capture, suggestion_command

router = APIRouter(tags=["dashboard"])
e = html.escape
PAGE_SIZE = 60


# ---- the drift panel's next step --------------------------------------------------------------------


def drift_action(session: Any, model_id: str, series: list[dict[str, Any]]) -> str:
    """HTML under a model's drift chart: the capture offer, or what capture is doing for it."""
    policy = samples.active_policy(session, model_id=model_id)
    counts = samples.sample_counts(session, model_id=model_id)
    gallery = (
        f'<a href="/dashboard/samples?{urlencode({"model": model_id})}">{counts["samples"]} field samples</a>'
    )
    if policy is not None:
        return (
            f'<p class="capture on" id="capture-{e(model_id)}">Capture is on for {e(model_id)} ({policy.tuf}); '
            f"{gallery}.</p>"
        )
    suggestion = suggest_capture(series)
    if suggestion is None:
        return (
            f'<p class="capture muted">Capture is off for {e(model_id)}; {gallery}.</p>'
            if counts["samples"]
            else ""
        )
    return (
        f'<div class="capture-offer warning" id="capture-offer-{e(model_id)}"><b>Drift of {e(model_id)} '
        f"{e(', '.join(suggestion['versions']))} passed the alert band.</b> Next step: capture what the devices "
        f"see, recalibrate on it and validate (docs/fleet.md, <i>Field capture</i>). Suggested: "
        f"{e(', '.join(suggestion['triggers']))}, {suggestion['per_hour']}/h and {suggestion['per_day']}/day "
        f'per device. <form method="post" action="/dashboard/capture/{e(model_id)}/on" class="inline">'
        f'<button type="submit">Turn capture on</button></form><br><code>{e(suggestion_command(model_id, suggestion))}'
        f"</code></div>"
    )


# ---- labels -----------------------------------------------------------------------------------------


def _labels_of(data: bytes) -> tuple[str, ...]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            manifest = json.loads(z.read("manifest.json"))
            name = (manifest.get("model") or {}).get("labels")
            if not isinstance(name, str):
                return ()
            text = z.read(name).decode("utf-8", "replace")
    except (KeyError, ValueError, zipfile.BadZipFile, OSError):
        return ()
    return tuple(line.strip() for line in text.splitlines() if line.strip())[:1000]


def labels_for(session: Any, store: Any, model_id: str, version: str) -> tuple[str, ...]:
    """The class names of a release (its package's label file), or () when it has none."""
    rel = session.scalar(select(Release).where(Release.model_id == model_id, Release.version == version))
    if rel is None or rel.size > 64 << 20:
        return ()
    if rel.sha256 in _LABEL_CACHE:
        return _LABEL_CACHE[rel.sha256]
    data = b"".join(store.open_range(rel.sha256, 0, rel.size - 1))
    found = _labels_of(data)
    _LABEL_CACHE[rel.sha256] = found
    return found


_LABEL_CACHE: dict[str, tuple[str, ...]] = {}


# ---- thumbnails -------------------------------------------------------------------------------------


def thumbnail(data: bytes) -> str:
    """A data: URI PNG of a sample (the kept image, else the model input with its preprocessing undone)."""
    from PIL import Image

    try:
        arrays, meta = samples.read_sample_bytes(data)
    except SampleRefused:
        return ""
    image = arrays.get("image")
    if image is None:
        pre = meta.preprocessing
        x = arrays["x"].astype(np.float32) * np.asarray(pre.std, np.float32) + np.asarray(
            pre.mean, np.float32
        )
        if x.ndim == 4:
            x = x[0]
        if x.ndim == 3 and x.shape[-1] not in (1, 3):
            x = x[..., :1]
        lo, hi = float(np.min(x)), float(np.max(x))
        image = ((x - lo) / ((hi - lo) or 1.0) * 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    im = Image.fromarray(image)
    if max(im.size) > 160:
        im.thumbnail((160, 160))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# ---- the gallery page -------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 72rem; color: #111; padding: 0 1rem; }
.muted { color: #666; } .filters a { margin-right: 0.6rem; } .filters a.on { font-weight: bold; }
.grid { display: flex; flex-wrap: wrap; gap: 0.8rem; }
.sample { border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem; width: 11rem; font-size: 0.85rem; }
.sample img { width: 96px; height: 96px; image-rendering: pixelated; display: block; margin: 0 auto 0.3rem; background: #000; }
.sample form { margin: 0.2rem 0; display: inline; } .sample select { max-width: 100%; } .sample.labeled { border-color: #16a34a; }
.badge { border-radius: 4px; padding: 0 0.4rem; font-size: 0.8rem; background: #e5e7eb; }
"""


def _filter_links(base: dict[str, str], key: str, values: list[str], current: str | None) -> str:
    links = []
    for v in [None, *values]:
        q = {k: x for k, x in base.items() if k != key}
        if v is not None:
            q[key] = v
        on = ' class="on"' if v == current else ""
        links.append(f'<a{on} href="/dashboard/samples?{e(urlencode(q))}">{e(v or "all")}</a>')
    return f'<p class="filters">{key}: {"".join(links)}</p>'


def render_gallery(session: Any, store: Any, query: dict[str, str]) -> str:
    model, version, trigger = query.get("model"), query.get("version"), query.get("trigger")
    labeled = {"yes": True, "no": False}.get(query.get("labeled", ""))
    rows = samples.list_samples(
        session,
        model_id=model,
        version=version,
        trigger=trigger,
        labeled=labeled,
        discarded=False,
        limit=PAGE_SIZE,
    )
    models = sorted({m for (m,) in session.execute(select(samples.FieldSample.model_id).distinct())})
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>liteship fleet — field samples</title>"
        f"<style>{STYLE}</style></head><body><h1>Field samples</h1>"
        '<p class="muted"><a href="/dashboard">← dashboard</a> · what devices captured under a capture policy '
        f"(newest {PAGE_SIZE}); label a sample with its true class, or discard it. Export: "
        "<code>liteship fleet samples export MODEL --since 24h -o field.npz</code>.</p>",
        _filter_links(query, "model", models, model),
    ]
    if model:
        versions = sorted(
            {
                v
                for (v,) in session.execute(
                    select(samples.FieldSample.version)
                    .where(samples.FieldSample.model_id == model)
                    .distinct()
                )
            }
        )
        parts.append(_filter_links(query, "version", versions, version))
        counts = samples.sample_counts(session, model_id=model)
        parts.append(_filter_links(query, "trigger", sorted(counts["by_trigger"]), trigger))
        parts.append(_filter_links(query, "labeled", ["yes", "no"], query.get("labeled")))
        parts.append(
            f'<p class="muted" id="counts">{counts["samples"]} samples, {counts["labeled"]} labeled, '
            f"{counts['discarded']} discarded.</p>"
        )
    if not rows:
        parts.append(
            '<p class="empty">No field samples here. Turn capture on for a model '
            "(<code>liteship fleet capture on MODEL --trigger …</code>) and wait for devices to upload.</p>"
        )
    parts.append('<div class="grid">')
    back = "/dashboard/samples?" + urlencode(query)
    for r in rows:
        names = labels_for(session, store, r.model_id, r.version)
        try:
            src = thumbnail(samples.sample_bytes(store, r))
        except Exception:  # noqa: BLE001 - a missing blob shows an empty picture, never a 500
            src = ""
        pred = names[r.predicted] if r.predicted < len(names) else (r.predicted_label or str(r.predicted))
        conf = "—" if r.confidence is None else f"{r.confidence:.2f}"
        label_text = (
            ""
            if r.label is None
            else f"<br>label <b>{e(names[r.label] if r.label < len(names) else str(r.label))}</b>"
        )
        chosen = r.label if r.label is not None else r.predicted  # confirming the prediction is one click
        options = "".join(
            f'<option value="{i}"{" selected" if chosen == i else ""}>{i}: {e(n)}</option>'
            for i, n in enumerate(names or [str(i) for i in range(max(10, r.predicted + 1))])
        )
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.captured_at))
        parts.append(
            f'<div class="sample{" labeled" if r.label is not None else ""}" id="sample-{r.id}">'
            f'<img alt="sample {r.id}" src="{src}">'
            f"predicted <b>{e(pred)}</b> · {conf}<br><span class='badge'>{e(r.trigger)}</span> "
            f"{e(r.model_id)} {e(r.version)}<br><span class='muted'>{e(r.device_id)} · {when}</span>{label_text}"
            f'<form method="post" action="/dashboard/samples/{r.id}/label"><input type="hidden" name="back" '
            f'value="{e(back)}"><select name="label" aria-label="class of sample {r.id}">{options}</select> '
            f'<button type="submit">Label</button></form>'
            f'<form method="post" action="/dashboard/samples/{r.id}/label"><input type="hidden" name="back" '
            f'value="{e(back)}"><input type="hidden" name="discard" value="1"><button type="submit">Discard</button>'
            f"</form></div>"
        )
    parts.append("</div></body></html>")
    return "".join(parts)


@router.get("/dashboard/samples", response_class=HTMLResponse, response_model=None)
def gallery(request: Request, session: SessionDep) -> HTMLResponse | RedirectResponse:
    """The gallery (filters: ``model``, ``version``, ``trigger``, ``labeled=yes|no``)."""
    if not signed_in(request, session):
        return RedirectResponse("/dashboard/login", status_code=status.HTTP_303_SEE_OTHER)
    query = {
        k: v[:128] for k, v in request.query_params.items() if k in ("model", "version", "trigger", "labeled")
    }
    return HTMLResponse(render_gallery(session, request.app.state.store, query))


def _guard(request: Request, session: Any) -> HTMLResponse | RedirectResponse | None:
    if not signed_in(request, session):
        return RedirectResponse("/dashboard/login", status_code=status.HTTP_303_SEE_OTHER)
    if not same_origin(request):
        return HTMLResponse("cross-site form post refused.", status_code=status.HTTP_403_FORBIDDEN)
    return None


@router.post("/dashboard/samples/{sample}/label", response_model=None)
async def label_form(sample: int, request: Request, session: SessionDep) -> HTMLResponse | RedirectResponse:
    """The gallery's Label / Discard buttons."""
    refused = _guard(request, session)
    if refused is not None:
        return refused
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    back = (form.get("back") or ["/dashboard/samples"])[0]
    if not back.startswith("/dashboard/samples"):
        back = "/dashboard/samples"
    if not 1 <= sample < 2**31:
        return HTMLResponse("no such sample.", status_code=status.HTTP_404_NOT_FOUND)
    try:
        if form.get("discard"):
            body = samples.SampleLabel(discarded=True)
        else:
            body = samples.SampleLabel(label=int((form.get("label") or [""])[0]))
    except ValueError:
        return HTMLResponse(
            "the label must be a class index.", status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
        )
    samples.set_label(session, sample=sample, body=body)
    session.commit()
    return RedirectResponse(f"{back}#sample-{sample}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/dashboard/capture/{model_id}/on", response_model=None)
async def capture_on_form(
    model_id: str, request: Request, session: SessionDep
) -> HTMLResponse | RedirectResponse:
    """The drift panel's "Turn capture on" button: the suggested rules for this model."""
    from starlette.concurrency import run_in_threadpool

    refused = _guard(request, session)
    if refused is not None:
        return refused
    suggestion = suggest_capture(aggregate.drift_series(session, model_id=model_id)) or suggest_capture(
        [{"version": "", "latest_level": ALERT_LEVEL}]
    )
    assert suggestion is not None
    body = samples.CapturePolicyCreate(
        rules=[samples.RuleIn(**r) for r in suggestion["rules"]],
        per_hour=suggestion["per_hour"],
        per_day=suggestion["per_day"],
    )
    await run_in_threadpool(start_capture, request.app, model_id, body)
    return RedirectResponse(f"/dashboard#capture-{model_id}", status_code=status.HTTP_303_SEE_OTHER)


__all__ = ["router", "drift_action", "suggest_capture", "suggestion_command", "thumbnail"]
