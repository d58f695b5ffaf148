"""The agent's entry points, one per CLI command: :func:`enroll`, :func:`run_agent`, :func:`agent_status`,
:func:`install_package`. Device settings live in ``<state>/device.json`` (mode 0600), the trusted TUF
root in ``<state>/tuf/root.json`` and the publisher key in ``<state>/publisher.pub``.
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship.agent.client import FleetClient
from liteship.agent.clock import Clock
from liteship.agent.fsutil import atomic_write_bytes, atomic_write_json, read_json
from liteship.agent.recovery import recover
from liteship.agent.sinks import event, open_sink, setup_logging
from liteship.agent.store import Store, UpdateRefused
from liteship.errors import AgentError, UsageError
from liteship.types import ReportMixin


@dataclass(frozen=True)
class AgentConfig:
    """Everything ``liteship agent run`` needs; unset fields come from ``device.json``."""

    state_dir: Path
    source: str = "camera"
    sink: str = "stdout"
    server: str | None = None
    token: str | None = None
    device_id: str | None = None
    key: Path | None = None
    poll_interval: float = 60.0
    window_s: float = 60.0
    health_inferences: int = 50
    health_seconds: float = 300.0
    latency_budget_ms: float | None = None
    num_threads: int | None = None
    loop: bool = False
    max_frames: int | None = None
    spool_max: int = 1000


@dataclass(frozen=True)
class AgentStatus(ReportMixin):
    """What ``liteship agent status`` shows."""

    state_dir: str
    device_id: str | None
    server: str | None
    current: str | None
    previous: str | None
    pending: dict[str, Any] | None
    failed: dict[str, Any] = field(default_factory=dict)
    last_checkin: dict[str, Any] | None = None
    last_decision: dict[str, Any] | None = None
    spooled_windows: int = 0


def _device(state_dir: Path) -> dict[str, Any]:
    return read_json(state_dir / "device.json", {}) or {}


def _key(state_dir: Path, key: Path | None) -> Path | None:
    if key is not None:
        return key
    stored = state_dir / "publisher.pub"
    return stored if stored.is_file() else None


def enroll(
    state_dir: str | Path,
    *,
    server: str,
    enrollment_token: str,
    device_id: str,
    key: str | Path,
    model_id: str | None = None,
    tuf_root: str | Path | None = None,
    transport: Any = None,
) -> dict[str, Any]:
    """Register with the server; store the device token, the trusted TUF root and the publisher key.

    Args:
        tuf_root: The fleet's ``root.json`` delivered out of band (recommended). Defaults to fetching
            ``1.root.json`` from the server now (trust on first use: enroll on a trusted network).
    """
    state = Path(state_dir)
    (state / "tuf").mkdir(parents=True, exist_ok=True)
    client = FleetClient(server, transport=transport)
    try:
        root = Path(tuf_root).read_bytes() if tuf_root else client.fetch_metadata("1.root.json")
        token = client.register(device_id=device_id, enrollment_token=enrollment_token, model_id=model_id)
    finally:
        client.close()
    atomic_write_bytes(state / "tuf" / "root.json", root)
    shutil.copyfile(key, state / "publisher.pub")
    config = {"server": server.rstrip("/"), "device_id": device_id, "token": token, "model_id": model_id}
    atomic_write_json(state / "device.json", config)
    os.chmod(state / "device.json", 0o600)
    return {"device_id": device_id, "server": config["server"], "state_dir": str(state), "tuf_root": "stored"}


def agent_status(state_dir: str | Path) -> AgentStatus:
    state = Path(state_dir)
    if not state.is_dir():
        raise UsageError(
            f"agent state folder {str(state)!r} does not exist.", hint="Run `liteship agent enroll` first."
        )
    store = Store(state)
    s, dev = store.state(), _device(state)
    spool = state / "spool"
    return AgentStatus(
        state_dir=str(state),
        device_id=dev.get("device_id"),
        server=dev.get("server"),
        current=store.current_version(),
        previous=store.previous_version(),
        pending=s["pending"],
        failed=s["failed"],
        last_checkin=s.get("last_checkin"),
        last_decision=s.get("last_decision"),
        spooled_windows=len(list(spool.glob("w-*.json"))) if spool.is_dir() else 0,
    )


def install_package(
    state_dir: str | Path, package: str | Path, *, key: str | Path | None = None
) -> dict[str, Any]:
    """Install a package from a file (provisioning): verify, smoke-test, swap. Refusals raise AgentError.

    The first key given is kept as the publisher key (``<state>/publisher.pub``) unless one is stored.
    """
    state = Path(state_dir)
    store = Store(state, _key(state, Path(key) if key else None))
    if key is not None and not (state / "publisher.pub").exists():  # provisioning sets the trust anchor
        shutil.copyfile(key, state / "publisher.pub")
    recover(store)
    try:
        manifest = store.install(package)
    except UpdateRefused as e:
        store.record_decision("refused", None, str(e), code=e.reason)
        raise
    return {
        "installed": manifest.version,
        "model_id": manifest.model_id,
        "previous": store.previous_version(),
    }


def run_agent(config: AgentConfig) -> int:
    """Recover, then run the inference loop (and the updater when a server is configured) until the
    source ends or SIGTERM/SIGINT. Returns the number of frames processed."""
    from liteship.agent.health import HealthWindow
    from liteship.agent.loop import AgentLoop
    from liteship.agent.sources import open_source
    from liteship.agent.telemetry import Spool
    from liteship.agent.updater import Updater

    setup_logging()
    state = Path(config.state_dir)
    dev = _device(state)
    store = Store(state, _key(state, config.key))
    if store.public_key is None:
        raise AgentError(
            "no publisher key: the agent installs nothing it cannot verify.",
            hint="Pass --key publisher.pub or enroll.",
        )
    for action in recover(store):
        event("recovery", action=action)
    server, token = config.server or dev.get("server"), config.token or dev.get("token")
    updater = None
    if server and token:
        client = FleetClient(server, config.device_id or dev.get("device_id"), token)
        updater = Updater(
            store,
            client,
            Clock(state / "clock.json"),
            model_id=dev.get("model_id"),
            interval=config.poll_interval,
            num_threads=1,
        )
    health = HealthWindow(
        store,
        inferences=config.health_inferences,
        seconds=config.health_seconds,
        latency_budget_ms=config.latency_budget_ms,
    )
    loop = AgentLoop(
        store,
        open_source(config.source, loop=config.loop),
        open_sink(config.sink),
        Spool(state / "spool", config.spool_max),
        updater=updater,
        health=health,
        window_s=config.window_s,
        num_threads=config.num_threads,
        max_frames=config.max_frames,
    )
    signal.signal(signal.SIGTERM, loop.stop)
    signal.signal(signal.SIGINT, loop.stop)
    event("agent started", current=store.current_version(), server=server, source=config.source)
    frames = loop.run()
    event("agent stopped", frames=frames, spooled=len(loop.spool))
    return frames


__all__ = ["AgentConfig", "AgentStatus", "enroll", "agent_status", "install_package", "run_agent"]
