"""Untrusted target mirrors: nginx on loopback serving copies of the targets (one good, one tampered),
a mirror that is down, the plan's mirror list, Range resume through a mirror. The real agent updater
verifies everything through TUF; nothing a mirror serves is trusted."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import httpx
import pytest

from .conftest import ADMIN, ENROLL, LiveServer
from .services import Nginx, agent_updater, free_port, mirror_copy


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory) -> Iterator[tuple[Nginx, Nginx]]:
    """Two nginx mirrors: ``good`` serves true copies, ``bad`` serves tampered ones."""
    root = tmp_path_factory.mktemp("mirrors")
    good = Nginx(root / "good-root", root / "good").start()
    try:
        bad = Nginx(root / "bad-root", root / "bad").start()
    except BaseException:
        good.stop()
        raise
    yield good, bad
    good.stop()
    bad.stop()


@pytest.fixture(scope="module")
def fleet_server(tmp_path_factory, keys, make_package, mirrors) -> Iterator[dict]:
    """A live server (SQLite, local artifacts) whose plans name: a mirror that is down, the tampered
    mirror, then the good one; ``digits`` 1.0.0 published and copied to both mirrors."""
    from liteship.fleet.app import create_app
    from liteship.fleet.settings import Settings

    good, bad = mirrors
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    data = tmp_path_factory.mktemp("fleet") / "data"
    settings = Settings(
        environment="production",
        admin_token=ADMIN,
        enrollment_token=ENROLL,
        data_dir=data,
        trusted_keys=[keys["good"].public_path],
        mirrors=[down, bad.url, good.url],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(settings)
    package = make_package("digits", "1.0.0")
    with LiveServer(app) as server:
        r = httpx.post(
            f"{server.url}/api/v1/releases",
            content=package.read_bytes(),
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert r.status_code == 201, r.text
        plan = {"target_path": r.json()["target_path"], "sha256": r.json()["sha256"]}
        data_bytes = package.read_bytes()
        mirror_copy(good.root, plan, package)
        tampered = bytearray(data_bytes)
        tampered[len(tampered) // 2] ^= 0xFF  # same length, one byte flipped
        mirror_copy(bad.root, plan, package, bytes(tampered))
        yield {"url": server.url, "data_dir": data, "package": package, "down": down}
    app.state.engine.dispose()


def _lines(nginx: Nginx, start: int) -> list[str]:
    return nginx.access_log()[start:]


def test_plan_mirrors_down_skipped_tampered_refused_next_tried(fleet_server, mirrors, keys, tmp_path):
    good, bad = mirrors
    g0, b0 = len(good.access_log()), len(bad.access_log())
    updater = agent_updater(
        fleet_server["url"],
        fleet_server["data_dir"],
        tmp_path / "dev-plan",
        keys["good"].public_path,
        enroll=ENROLL,
    )
    plan = updater.client.check_in(model_id="digits", version=None)
    assert plan["mirrors"] == [fleet_server["down"], bad.url, good.url]  # the server's plan names them
    path = updater.fetch(plan)
    assert path.read_bytes() == fleet_server["package"].read_bytes()
    served_bad, served_good = _lines(bad, b0), _lines(good, g0)
    assert len(served_bad) == 1 and served_bad[0].startswith("200 ")  # served, then refused by TUF
    assert len(served_good) == 1 and served_good[0].startswith("200 ")  # the next mirror delivered
    assert all('auth=""' in line or 'auth="-"' in line for line in served_bad + served_good)  # no token
    decision = updater.apply(plan)  # the whole update: verify the package, smoke-test, swap
    assert decision["action"] == "installed", decision
    assert updater.store.current_version() == "1.0.0"


def test_range_resume_through_a_mirror(fleet_server, mirrors, keys, tmp_path):
    good, _ = mirrors
    updater = agent_updater(
        fleet_server["url"],
        fleet_server["data_dir"],
        tmp_path / "dev-resume",
        keys["good"].public_path,
        mirrors=[good.url],  # this device's own configured mirror comes first
        enroll=ENROLL,
    )
    plan = updater.client.check_in(model_id="digits", version=None)
    assert updater.sources(plan, "/tuf/targets/x")[0] == f"{good.url}/x"
    data = fleet_server["package"].read_bytes()
    half = len(data) // 2
    updater.store.incoming.mkdir(parents=True, exist_ok=True)
    (updater.store.incoming / f"{plan['sha256']}.part").write_bytes(data[:half])  # an interrupted download
    g0 = len(good.access_log())
    assert updater.fetch(plan).read_bytes() == data
    served = _lines(good, g0)
    assert len(served) == 1 and served[0].startswith("206 ") and f'range="bytes={half}-"' in served[0]
    assert f"sent={len(data) - half}" in served[0]  # only the missing half crossed the network


def test_every_source_tampered_or_down_is_refused_cleanly(fleet_server, mirrors, keys, tmp_path):
    from liteship.errors import ServerError, UpdateRefused

    _, bad = mirrors
    updater = agent_updater(
        fleet_server["url"],
        fleet_server["data_dir"],
        tmp_path / "dev-bad",
        keys["good"].public_path,
        enroll=ENROLL,
    )
    plan = updater.client.check_in(model_id="digits", version=None)
    only_bad = {**plan, "mirrors": [bad.url]}
    path = updater.fetch(only_bad)  # the tampered mirror is refused; the server's copy verifies
    assert path.read_bytes() == fleet_server["package"].read_bytes()
    path.unlink()
    with pytest.raises(UpdateRefused, match="tampered") as refused:
        updater.download_verified(
            _target(updater, plan), path.with_suffix(".part"), "1.0.0", [_target_url(bad, plan)]
        )
    assert refused.value.reason == "hash"
    with pytest.raises(ServerError, match="no source delivered"):
        updater.download_verified(
            _target(updater, plan), path.with_suffix(".part"), "1.0.0", [f"{fleet_server['down']}/x"]
        )
    assert not path.with_suffix(".part").exists() or path.with_suffix(".part").stat().st_size == 0


def _target(updater, plan: dict):
    tuf = updater.tuf()
    tuf.refresh()
    return tuf.get_targetinfo(plan["target_path"])


def _target_url(nginx: Nginx, plan: dict) -> str:
    folder, _, name = plan["target_path"].rpartition("/")
    return f"{nginx.url}/{folder}/{plan['sha256']}.{name}"


def test_mirrors_setting_is_checked():
    from liteship.fleet.settings import Settings

    with pytest.raises(ValueError, match="not an http"):
        Settings(mirrors=["ftp://cdn.example/targets"])
    assert Settings(mirrors=["https://cdn.example/t/"]).mirrors == ["https://cdn.example/t"]
    assert Settings().mirrors == []


def test_sources_order_and_bounds(tmp_path):
    from liteship.agent.client import DeviceClient
    from liteship.agent.clock import Clock
    from liteship.agent.store import Store
    from liteship.agent.updater import MAX_MIRRORS, Updater

    store = Store(tmp_path / "state")
    updater = Updater(
        store,
        DeviceClient("http://server"),
        Clock(tmp_path / "clock.json"),
        mirrors=["http://local/", "file:///x"],
    )
    plan = {"mirrors": ["http://local", "javascript:x", 5, *[f"https://cdn{i}/t" for i in range(20)]]}
    urls = updater.sources(plan, "/tuf/targets/m/1.0.0/abc.m.lsp")
    assert urls[0] == "http://local/m/1.0.0/abc.m.lsp"  # the device's own mirror first, once
    assert urls[1:-1] == [f"https://cdn{i}/t/m/1.0.0/abc.m.lsp" for i in range(MAX_MIRRORS - 1)]
    assert urls[-1] == "/tuf/targets/m/1.0.0/abc.m.lsp"  # the server itself last
    assert updater.sources({"mirrors": "http://not-a-list"}, "/tuf/targets/a")[1:] == ["/tuf/targets/a"]
