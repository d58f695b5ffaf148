"""Every route of the real app, driven with hostile input (Hypothesis): never a 5xx, and every 4xx says
what failed.

The routes come from ``app.routes`` itself, so a route added later is fuzzed without touching this file.
Path parameters get traversal, huge or negative numbers, unicode, NUL and very long strings (or the ids
that exist, so the request gets past the lookups); query strings get the route's own parameters and
extra ones; bodies are any JSON (NaN, ±Infinity, 10**400, deep nesting), the route's own fields with
hostile values, or bytes under a wrong content type; the caller is the admin, a device, nobody, or a
forged token.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ADMIN, ENROLL, production_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HOSTILE_TEXT = [
    "",
    "../../../../etc/passwd",
    "..",
    "%2e%2e%2f",
    "a/../../b",
    "\x00",
    "nul\x00byte",
    "x" * 5000,
    "99999999999999999999999",
    "-1",
    "0",
    "NaN",
    "Infinity",
    "1e309",
    "\u202e\U0001f600ünïcødé",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "1.0.0",
    "digits",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.integers(min_value=-3, max_value=2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(HOSTILE_TEXT)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
texts = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=40)


def deep(n: int) -> bytes:
    """JSON nested ``n`` levels deep (built as text: ``json.dumps`` itself would recurse too far)."""
    return ('{"a":[' * n + "1" + "]}" * n).encode()


def flat_routes(routes: list[Any]) -> list[Any]:
    """The app's routes, with the routers that ``include_router`` wraps opened up."""
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(flat_routes(inner.routes) if inner is not None else [r])
    return out


def api_routes(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path template, route) for every HTTP route (static mounts excluded)."""
    found = []
    for r in flat_routes(list(app.routes)):
        for method in sorted(getattr(r, "methods", None) or ()):
            found.append((method, r.path, r))
    return found


def body_fields(route: Any) -> list[str]:
    dependant = getattr(route, "dependant", None)
    fields: list[str] = []
    for p in dependant.body_params if dependant is not None else ():
        model = getattr(p.field_info, "annotation", None)
        fields.extend(getattr(model, "model_fields", {}) or [p.name])
    return fields


def query_names(route: Any) -> list[str]:
    dependant = getattr(route, "dependant", None)
    return [p.alias for p in dependant.query_params] if dependant is not None else []


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def world(request, tmp_path_factory, keys, make_package):
    """One server (production settings) with two releases, a rollout, devices, a bench job; on SQLite
    and on the throwaway PostgreSQL (which refuses NUL in text, unlike SQLite)."""
    import uuid

    from fastapi.testclient import TestClient

    from liteship.fleet.app import create_app

    database_url = None
    if request.param == "postgres":
        import psycopg

        base = request.getfixturevalue("postgres_server")
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        database_url = f"{base}/{name}"
    settings_ = production_settings(
        tmp_path_factory.mktemp("routes"), keys, database_url, min_devices=1, min_predictions=50
    )
    app = create_app(settings_)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(app, base_url="http://testserver") as client:
        for version in ("1.0.0", "1.1.0"):
            body = make_package("digits", version).read_bytes()
            assert client.post("/api/v1/releases", content=body, headers=admin).status_code == 201
        devices = {}
        for dev in ("fz-a", "fz-b"):
            r = client.post("/api/v1/devices/register", json={"device_id": dev, "enrollment_token": ENROLL})
            devices[dev] = {"Authorization": f"Bearer {r.json()['token']}"}
            client.post(f"/api/v1/devices/{dev}/checkin", json={"model_id": "digits"}, headers=devices[dev])
        r = client.post(
            "/api/v1/rollouts",
            json={"model_id": "digits", "candidate_version": "1.1.0", "stages": [50, 100]},
            headers=admin,
        )
        rid = r.json()["id"]
        blob = make_package("digits", "1.0.0").read_bytes()[:4096]
        variant = client.post("/api/v1/bench/variants", content=blob, headers=admin).json()
        job = client.post(
            "/api/v1/bench/jobs",
            json={"variants": [{"name": "v.tflite", "sha256": variant["sha256"]}], "devices": ["fz-a"]},
            headers=admin,
        )
        assert job.status_code in (200, 201), job.text
        r = client.post("/dashboard/login", data={"token": ADMIN}, follow_redirects=False)
        cookie = r.cookies.get("liteship_dashboard")
        known = {
            "device_id": ["fz-a", "fz-b"],
            "model_id": ["digits"],
            "version": ["1.0.0", "1.1.0"],
            "rollout_id": [str(rid)],
            "action": ["pause", "resume", "evaluate", "abort", "promote"],
            "job_id": [job.json()["id"]],
            "sha256": [variant["sha256"]],
            "name": ["root.json", "timestamp.json", "1.snapshot.json", "v.tflite"],
            "path": ["digits/1.0.0/model.tflite", "bench-jobs/x/v.tflite"],
        }
        yield {
            "app": app,
            "client": client,
            "admin": admin,
            "devices": devices,
            "rid": rid,
            "known": known,
            "cookie": cookie,
        }
    app.state.engine.dispose()


PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def fill_path(template: str, draw: Any, known: dict[str, list[str]]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        value = draw(st.sampled_from(known.get(name, ["x"])) | texts, label=name)
        raw = draw(st.booleans(), label=f"{name} unquoted")
        printable = value.isascii() and value.isprintable() and not set(value) & set("/?#% ")
        return value if raw and printable else quote(value, safe="")

    return PARAM.sub(one, template)


def caller(draw: Any, world: dict[str, Any]) -> dict[str, str]:
    choice = draw(st.sampled_from(["admin", "fz-a", "fz-b", "none", "forged", "cookie"]), label="caller")
    if choice == "admin":
        return dict(world["admin"])
    if choice in world["devices"]:
        return dict(world["devices"][choice])
    if choice == "forged":
        return {"Authorization": "Bearer " + draw(texts.filter(lambda t: t.isascii() and "\n" not in t))}
    if choice == "cookie" and world["cookie"]:
        return {"Cookie": f"liteship_dashboard={world['cookie']}", "Origin": "http://testserver"}
    return {}


def make_body(draw: Any, route: Any) -> tuple[bytes | None, str | None]:
    kind = draw(st.sampled_from(["none", "json", "fields", "deep", "bytes", "form", "long"]), label="body")
    if kind == "none":
        return None, None
    if kind == "json":
        return json.dumps(draw(json_values), allow_nan=True).encode(), "application/json"
    if kind == "fields":
        fields = body_fields(route) or ["x"]
        body = draw(st.dictionaries(st.sampled_from([*fields, "extra"]), json_values, max_size=6))
        return json.dumps(body, allow_nan=True).encode(), "application/json"
    if kind == "deep":
        return deep(draw(st.integers(min_value=30, max_value=3000))), "application/json"
    if kind == "long":
        body = {f: "ü" * 200_000 for f in body_fields(route) or ["x"]}
        return json.dumps(body).encode(), "application/json"
    if kind == "form":
        return b"token=" + quote(draw(texts)).encode(), "application/x-www-form-urlencoded"
    content_type = draw(st.sampled_from(["application/json", "text/plain", "application/octet-stream", ""]))
    return draw(st.binary(max_size=200)), content_type or None


GENERIC = {"Not Found", "Method Not Allowed", "Unauthorized", "Forbidden", "Bad Request"}


def check(r: Any, method: str, url: str) -> None:
    where = f"{method} {url[:200]} -> {r.status_code}: {r.text[:300]}"
    assert r.status_code < 500, where
    if r.status_code < 400 or method == "HEAD":  # a HEAD answer has no body to explain itself
        return
    if r.headers.get("content-type", "").startswith("application/json"):
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = None
        assert isinstance(detail, str) and len(detail) >= 15 and detail not in GENERIC, where
    else:
        assert len(r.text) >= 15, where


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_route_answers_hostile_input_with_a_clear_4xx(world, data):
    routes = api_routes(world["app"])
    method, template, route = data.draw(st.sampled_from(routes), label="route")
    url = fill_path(template, data.draw, world["known"])
    names = query_names(route)
    params = data.draw(
        st.dictionaries(st.sampled_from([*names, "extra"]), texts | st.integers().map(str), max_size=4),
        label="query",
    )
    headers = caller(data.draw, world)
    body, content_type = make_body(data.draw, route) if method in ("POST", "PUT") else (None, None)
    if content_type:
        headers["content-type"] = content_type
    r = world["client"].request(method, url, params=params, content=body, headers=headers)
    check(r, method, url)


def test_every_route_once_with_each_kind_of_hostile_body(world):
    """A deterministic pass so no route is left to chance: each with one hostile example per kind."""
    client = world["client"]
    bodies = [
        (b'{"a": NaN, "b": 1e999, "c": -Infinity}', "application/json"),
        (deep(2000), "application/json"),
        (b"\xff\xfe not json", "application/json"),
        (b"plain", "text/plain"),
        (json.dumps([10**400]).encode(), "application/json"),
    ]
    seen = 0
    for method, template, _route in api_routes(world["app"]):
        for who in ("admin", "fz-a", "none"):
            headers = dict(world["admin"] if who == "admin" else world["devices"].get(who, {}))
            url = PARAM.sub(lambda m: world["known"].get(m.group(1), ["x"])[0], template)
            for value in ("../../etc/passwd", "99999999999999999999999", "\x00", "x" * 3000):
                bad = PARAM.sub(lambda m, v=value: quote(v, safe=""), template)  # noqa: B023
                check(client.request(method, bad, headers=headers), method, bad)
            for content, ctype in bodies if method in ("POST", "PUT") else [(None, None)]:
                h = {**headers, "content-type": ctype} if ctype else headers
                check(client.request(method, url, content=content, headers=h), method, url)
            seen += 1
    assert seen >= 3 * 35  # every route was reached (the app has ~38 method/path pairs)


def test_the_server_still_works_after_the_fuzzing(world):
    client, admin, rid = world["client"], world["admin"], world["rid"]
    time.sleep(0)
    assert client.get("/dashboard", headers=admin).status_code == 200
    assert client.get(f"/api/v1/rollouts/{rid}", headers=admin).status_code == 200
    for dev, headers in world["devices"].items():
        r = client.post(f"/api/v1/devices/{dev}/checkin", json={"model_id": "digits"}, headers=headers)
        assert r.status_code == 200, r.text
