"""Drift per variant (issue 24): a multi-variant release's drift is judged per (release, variant), each
variant against its own package's reference histogram (else the release's), beside the release-level
figure — in the drift API, `liteship fleet drift` (table and --json) and the dashboard's drift panel.

Six devices send real telemetry over HTTP: the Pi 4s run the float variant and see what its validation
saw (no drift); the Pi 5s run the int8-dotprod variant on far less confident inputs (alert)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from liteship.fleet import aggregate
from liteship.package import Variant, build_package, parse_when

from .conftest import ADMIN, ENROLL

MODEL_FILE = (
    Path(__file__).resolve().parents[2] / "data" / "third_party" / "mobilenet_v1_0.25_224_quant.tflite"
)
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
PI4 = {"machine": "aarch64", "isa": ["neon"], "litert": "1.4.0"}
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"], "litert": "1.4.0"}
FLOAT = Variant("float", default=True)
DOT = Variant("int8-dotprod", when=(parse_when("machine=aarch64,isa=dotprod"),))
_ids = itertools.count()


def beta_hist(a: float, b: float, n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return np.histogram(rng.beta(a, b, size=n), bins=20, range=(0.0, 1.0))[0].astype(int).tolist()


def reference(a: float, b: float) -> dict[str, list]:
    return {"bins": np.linspace(0.0, 1.0, 21).tolist(), "counts": beta_hist(a, b, 20_000, seed=1)}


@pytest.fixture(scope="module")
def packages(keys, tmp_path_factory):
    """1.0.0: float (reference: confident, beta(8,2)) and int8-dotprod with its *own* reference (beta(4,4));
    1.1.0: the same variants, the int8-dotprod package without a reference (it falls back on the release's)."""
    out = tmp_path_factory.mktemp("variant-drift")

    def make(version: str, variant: Variant, ref: dict[str, list] | None) -> Path:
        info = build_package(
            MODEL_FILE,
            out / f"{version}-{variant.name}",
            model_id="digits",
            version=version,
            private_key=keys["good"].private_path,
            golden_inputs=np.full((1, 224, 224, 3), 128, dtype=np.uint8),
            created="2025-01-01T00:00:00Z",
            variant=variant,
            reference_histogram=ref,
            description=f"{variant.name} build",
        )
        return Path(info.path)

    return [
        make("1.0.0", FLOAT, reference(8, 2)),
        make("1.0.0", DOT, reference(4, 4)),
        make("1.1.0", FLOAT, reference(8, 2)),
        make("1.1.0", DOT, None),
    ]


Post = Callable[..., Any]


def report(post: Post, devices: dict[str, tuple[dict[str, str], dict[str, Any]]]) -> dict[str, str]:
    """Each device checks in, runs the variant it is assigned and sends one window of 400 predictions:
    the float ones as confident as their validation data, the int8-dotprod ones far less."""
    ran = {}
    for n, (dev, (headers, profile)) in enumerate(sorted(devices.items())):
        body = {"model_id": "digits", "model_version": None, "runtime": profile}
        a = post(f"/api/v1/devices/{dev}/checkin", json=body, headers=headers).json()
        body.update(model_version=a["version"], model_variant=a["variant"])
        assert post(f"/api/v1/devices/{dev}/checkin", json=body, headers=headers).status_code == 200
        hist = (
            beta_hist(8, 2, 400, seed=10 + n)
            if a["variant"] == "float"
            else beta_hist(2, 8, 400, seed=10 + n)
        )
        latency = [0] * 12
        latency[3] = 400
        window = {
            "window_id": f"v-{next(_ids)}-{time.time_ns()}",
            "model_id": "digits",
            "model_version": a["version"],
            "started": time.time() - 60,
            "ended": time.time(),
            "inferences": 400,
            "confidence_hist": hist,
            "latency_hist": latency,
            "latency_edges_ms": [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
        }
        r = post(f"/api/v1/devices/{dev}/telemetry", json=window, headers=headers)
        assert r.status_code == 201 and r.json()["counted"], r.text
        ran[dev] = a["variant"]
    return ran


def fill(post: Post, packages: list[Path], versions: int = 1) -> None:
    for pkg in packages[: 2 * versions]:
        r = post("/api/v1/releases", content=pkg.read_bytes(), headers=ADMIN_H, params={"channel": "stable"})
        assert r.status_code == 201, r.text
    devices = {}
    for kind, profile in (("pi4", PI4), ("pi5", PI5)):
        for i in range(3):
            dev = f"{kind}-{i}"
            body = {"device_id": dev, "enrollment_token": ENROLL, "model_id": "digits"}
            token = post("/api/v1/devices/register", json=body).json()["token"]
            devices[dev] = ({"Authorization": f"Bearer {token}"}, profile)
    ran = report(post, devices)
    assert sorted(ran.values()) == ["float"] * 3 + ["int8-dotprod"] * 3


def check_series(series: list[dict[str, Any]], version: str = "1.0.0") -> dict[str, dict[str, Any]]:
    s = next(s for s in series if s["version"] == version)
    assert s["has_reference"] and s["predictions"] == 2400 and s["latest_level"] != "insufficient"  # kept
    by = {v["variant"]: v for v in s["variants"]}
    assert list(by) == ["float", "int8-dotprod"] and by["float"]["default"]
    assert by["float"]["predictions"] == by["int8-dotprod"]["predictions"] == 1200
    assert by["float"]["latest_level"] == "ok" and by["float"]["points"][-1]["psi"] < 0.1, by["float"]
    assert by["int8-dotprod"]["latest_level"] == "alert" and by["int8-dotprod"]["points"][-1]["psi"] >= 0.2
    assert s["worst_variant_level"] == "alert" and s["other_variant_windows"] == 0
    return by


def test_each_variant_drifts_against_its_own_reference_over_http(live_server, packages, cli):
    url = live_server.url

    def post(path: str, **kw: Any) -> httpx.Response:
        return httpx.post(url + path, timeout=60, **kw)

    fill(post, packages)
    got = httpx.get(f"{url}/api/v1/drift", params={"model_id": "digits"}, headers=ADMIN_H)
    assert got.status_code == 200, got.text
    by = check_series(got.json())
    assert by["float"]["reference"] == by["int8-dotprod"]["reference"] == "variant"

    # the hourly sums give the figures of the rescan of every window, whole hours and a partial one
    sessionmaker = live_server.app.state.sessionmaker
    with sessionmaker() as session:
        for since in (0.0, time.time() - 1800):
            fast = aggregate.drift_series(session, model_id="digits", since=since)
            assert fast == aggregate.drift_series(session, model_id="digits", since=since, rescan=True)
        odd = aggregate.drift_series(session, model_id="digits", period_s=5400.0)  # not whole hours
        check_series(odd)

    env = {"LITESHIP_TOKEN": ADMIN, "LITESHIP_SERVER": url}
    r = cli("fleet", "drift", "digits", "--json", env=env)
    assert r.returncode == 0, r.stderr
    check_series(json.loads(r.stdout))
    r = cli("fleet", "drift", "digits", env={**env, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if "1.0.0" in line]
    assert any("int8-dotprod" in line and "alert" in line and "variant" in line for line in rows), r.stdout
    assert any(" float " in line and " ok " in line for line in rows), r.stdout
    assert any(" all " in line for line in rows), r.stdout

    page = httpx.get(f"{url}/dashboard", headers=ADMIN_H)
    assert page.status_code == 200
    html = page.text
    assert 'id="drift-variants-digits-1.0.0"' in html
    assert 'data-variant="int8-dotprod" data-level="alert"' in html
    assert 'data-variant="float" data-level="ok"' in html


def test_variant_drift_on_both_backends_and_the_migration_backfill(fleet, packages):
    """The API through the app on SQLite and PostgreSQL; a variant without its own reference is judged
    against the release's; downgrading to 0011 and upgrading folds the stored windows in again."""
    from alembic import command
    from alembic.config import Config

    from liteship.fleet.app import MIGRATIONS

    fill(fleet.client.post, packages, versions=2)  # the devices run 1.1.0 (the latest stable)
    series = fleet.client.get("/api/v1/drift", params={"model_id": "digits"}, headers=fleet.admin).json()
    old = next(s for s in series if s["version"] == "1.0.0")
    assert [v["windows"] for v in old["variants"]] == [0, 0]
    assert {v["latest_level"] for v in old["variants"]} == {"insufficient"}
    assert old["worst_variant_level"] is None
    by = check_series(series, "1.1.0")
    assert by["float"]["reference"] == "variant" and by["int8-dotprod"]["reference"] == "release"
    one = fleet.client.get(
        "/api/v1/drift", params={"model_id": "digits", "version": "1.1.0"}, headers=fleet.admin
    )
    assert one.status_code == 200 and [s["version"] for s in one.json()] == ["1.1.0"]

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", str(fleet.app.state.engine.url).replace("%", "%%"))
    fleet.app.state.engine.dispose()
    command.downgrade(cfg, "0011")
    command.upgrade(cfg, "head")
    again = fleet.client.get("/api/v1/drift", params={"model_id": "digits"}, headers=fleet.admin).json()
    assert again == series
