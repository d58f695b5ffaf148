"""The agent's entry points, one per CLI command: :func:`enroll`, :func:`run_agent`, :func:`agent_status`,
:func:`install_package`. Device settings live in ``<state>/device.json`` (mode 0600), the trusted TUF
root in ``<state>/tuf/root.json`` and the publisher key in ``<state>/publisher.pub``.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship.agent.capture import read_status
from liteship.agent.client import DeviceClient, TransferLimits
from liteship.agent.clock import Clock
from liteship.agent.fsutil import atomic_write_bytes, atomic_write_json, read_json_object
from liteship.agent.health import HealthWindow
from liteship.agent.jobs import BenchJobs, LiveGate
from liteship.agent.loop import AgentLoop
from liteship.agent.profile import device_profile
from liteship.agent.recovery import recover
from liteship.agent.sinks import event, open_sink, setup_logging
from liteship.agent.sources import CameraBackend, camera_backends, open_frame_source
from liteship.agent.store import Store
from liteship.agent.telemetry import Spool
from liteship.agent.updater import Updater
from liteship.errors import AgentError, ServerError, UpdateRefused
from liteship.package.signing import load_public_key
from liteship.runtime.cpu import compiled_model_blocker, cpu_name
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
    accelerator: str | None = None  # e.g. "gpu,cpu"; None: the Interpreter on the CPU
    loop: bool = False
    max_frames: int | None = None
    spool_max: int = 1000
    max_fps: float | None = None
    mirrors: tuple[str, ...] = ()  # target mirror base URLs tried before the plan's and the server
    bench_duty_cycle: float = 0.5  # largest share of time a fleet bench job may take (liteship.agent.jobs)
    download_min_rate: float = 1024.0  # bytes/s every download must keep up (liteship.agent.client)
    download_window: float = 10.0  # seconds over which that rate is judged


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
    last_downgrade: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    rate: dict[str, Any] | None = None
    capture: dict[str, Any] | None = None  # field capture (liteship.agent.capture.read_status)


@dataclass(frozen=True)
class DoctorReport(ReportMixin):
    """What ``liteship agent doctor`` shows: the camera backends this device can use, or why not."""

    cameras: list[CameraBackend]
    cpu: str
    accelerators: list[str]  # what the model can run on here (``--accelerator``), "cpu" always
    accelerator_blocker: str | None = None  # why LiteRT's CompiledModel cannot start on this CPU


def agent_doctor() -> DoctorReport:
    """Look at this device's camera backends (without opening a camera) and accelerators (without
    loading LiteRT's accelerator library: on an ARMv8.0 core that would kill the process)."""
    return DoctorReport(
        cameras=camera_backends(),
        cpu=cpu_name(),
        accelerators=list(device_profile()["accelerators"]),
        accelerator_blocker=compiled_model_blocker(),
    )


def _device(state_dir: Path) -> dict[str, Any]:
    what = (
        "its server and token are unknown, so the agent works offline with the model it has. Restore "
        "the file or enroll the device again (`liteship agent enroll`)"
    )
    return read_json_object(state_dir / "device.json", what=what, set_aside=False)


def _key(state_dir: Path, key: Path | None) -> Path | None:
    if key is not None:
        return key
    stored = state_dir / "publisher.pub"
    return stored if stored.is_file() else None


def _checked_key(key: str | Path | None, state_dir: Path, parameter: str) -> Path:
    """The publisher key to use (given, else stored at enrollment), loaded once to prove it is usable."""
    found = _key(state_dir, Path(key) if key is not None else None)
    if found is None:
        raise AgentError(
            "no publisher key: the agent installs and runs nothing it cannot verify.",
            hint=f"Pass `{parameter}` (the publisher's ed25519 public key file, e.g. publisher.pub), "
            "or enroll the device (`enroll`), which stores it.",
        )
    load_public_key(found)
    return found


class _Undo:
    """Remove, when the command fails, what it created, and nothing that existed before it.

    Use as a context manager; call :meth:`mkdir` / :meth:`new` before creating a folder / file.
    """

    def __init__(self) -> None:
        self.created: list[Path] = []

    def mkdir(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        for p in reversed(missing):  # outermost first, so the undo removes the top one
            p.mkdir()
            self.created.append(p)

    def new(self, path: Path) -> Path:
        if not path.exists() and not path.is_symlink():
            self.created.append(path)
        return path

    def __enter__(self) -> _Undo:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            return
        for p in reversed(self.created):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _trusted_root(data: bytes, where: str) -> bytes:
    """``data`` when it is a TUF root's metadata (a parse check; its signatures are TUF's job)."""
    from tuf.api.metadata import Metadata, Root

    try:
        Metadata[Root].from_bytes(data)
    except Exception as e:  # noqa: BLE001 - any parse failure means the same thing here
        raise AgentError(
            f"{where} is not a TUF root metadata file ({type(e).__name__}: {e}).",
            hint="Give the fleet's root.json (the server publishes it as /tuf/metadata/1.root.json).",
        ) from e
    return data


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
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    """Register with the server; store the device token, the trusted TUF root and the publisher key.

    Nothing is written before the key, the root and the server's answer are known good; when writing
    fails, what this call created is removed again (an existing state folder is kept).

    Args:
        state_dir: The agent's state folder (created if missing).
        server: The fleet server's base URL.
        enrollment_token: The fleet's enrollment token.
        device_id: This device's id.
        key: The publisher's ed25519 public key file.
        model_id: The model this device runs. Defaults to none (the server decides).
        tuf_root: The fleet's ``root.json`` delivered out of band (recommended). Defaults to fetching
            ``1.root.json`` from the server now (trust on first use: enroll on a trusted network).
        transport: An ``httpx`` transport (tests). Defaults to the network.
        tags: Cohort tags (``site=berlin``, ``ring=canary``; issue 24). Defaults to none.

    Returns:
        ``device_id``, ``server``, ``state_dir``, ``tuf_root`` (``"pinned"`` when given,
        ``"trust-on-first-use"`` when fetched) and ``tuf_root_source`` (the file or URL it came from).
    """
    state = Path(state_dir)
    load_public_key(key)
    server = server.rstrip("/")
    if tuf_root is not None:
        root = _trusted_root(Path(tuf_root).read_bytes(), repr(str(tuf_root)))
        source = str(tuf_root)
    client = DeviceClient(server, transport=transport)
    try:
        if tuf_root is None:
            source = f"{server}/tuf/metadata/1.root.json"
            root = _trusted_root(client.fetch_metadata("1.root.json"), source)
        token = client.register(
            device_id=device_id, enrollment_token=enrollment_token, model_id=model_id, tags=list(tags)
        )
    finally:
        client.close()
    _send_profile(DeviceClient(server, device_id, token, transport=transport), model_id)
    config = {"server": server, "device_id": device_id, "token": token, "model_id": model_id}
    with _Undo() as undo:
        undo.mkdir(state / "tuf")
        atomic_write_bytes(undo.new(state / "tuf" / "root.json"), root)
        shutil.copyfile(key, undo.new(state / "publisher.pub"))
        atomic_write_json(undo.new(state / "device.json"), config)
        os.chmod(state / "device.json", 0o600)
    return {
        "device_id": device_id,
        "server": server,
        "state_dir": str(state),
        "tuf_root": "pinned" if tuf_root is not None else "trust-on-first-use",
        "tuf_root_source": source,
    }


def _send_profile(client: DeviceClient, model_id: str | None) -> None:
    """Tell the server this device's hardware profile at enrollment (one check-in, answer ignored).

    A failure here does not fail the enrollment (the token is issued already); the first check-in of
    ``run`` sends the profile again.
    """
    try:
        client.check_in(model_id=model_id, version=None, health=None, runtime=device_profile())
    except ServerError as e:
        event("profile not sent at enrollment", 30, error=str(e))
    finally:
        client.close()


def read_capture_status(root: Path) -> dict[str, Any] | None:
    return read_status(root)


def agent_status(state_dir: str | Path) -> AgentStatus:
    """What this device runs and last decided, read from its state folder (nothing is written).

    Raises:
        AgentError: The state folder does not exist (the device was never enrolled or provisioned).
    """
    state = Path(state_dir)
    if not state.is_dir():
        raise AgentError(
            f"agent state folder {str(state)!r} does not exist: this device has no model and no server.",
            hint="Enroll the device (`enroll`) or install a package (`install_package`) first, "
            "or give the state folder it uses.",
        )
    store = Store(state, create=False)  # status never writes
    if not store.looks_like_state():
        raise AgentError(
            f"{str(state)!r} is not an agent state folder (no state.json, device.json or model slots).",
            hint="Give the folder the agent runs with (`--state-dir`, default /var/lib/liteship-agent).",
        )
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
        last_downgrade=s.get("last_downgrade"),
        history=list(s["history"]),
        rate=s.get("rate"),
        capture=read_capture_status(state / "capture"),
    )


def install_package(
    state_dir: str | Path, package: str | Path, *, key: str | Path | None = None
) -> dict[str, Any]:
    """Install a package from a file (provisioning): verify, smoke-test, swap. Refusals raise AgentError.

    The first key given is kept as the publisher key (``<state>/publisher.pub``) unless one is stored.
    Nothing is created before the key and the package are found; when the install fails, what this
    call created is removed again (an existing state folder keeps its record of the refusal).

    Args:
        state_dir: The agent's state folder (created if missing).
        package: The ``.lsp`` file.
        key: The publisher's public key. Defaults to the one stored at enrollment.

    Returns:
        ``installed`` (version), ``model_id`` and ``previous`` (the fallback version, or None).
    """
    state = Path(state_dir)
    public = _checked_key(key, state, "key")
    if not Path(package).is_file():
        raise AgentError(f"package {str(package)!r} does not exist.", hint="Give the path of a .lsp file.")
    with _Undo() as undo:
        undo.mkdir(state)
        store = Store(state, public)
        if key is not None and not (state / "publisher.pub").exists():  # provisioning sets the trust anchor
            shutil.copyfile(key, undo.new(state / "publisher.pub"))
        recover(store)
        try:
            manifest = store.install(package)
        except UpdateRefused as e:
            store.record_decision("refused", None, str(e), code=e.reason)
            raise
        finally:
            store.record_clean_shutdown()  # provisioning is not a crash of the candidate it installs
    return {
        "installed": manifest.version,
        "model_id": manifest.model_id,
        "previous": store.previous_version(),
    }


def _nothing_to_run(state: Path) -> AgentError:
    return AgentError(
        f"no model is installed in {str(state)!r} and no fleet server is configured: nothing to run.",
        hint="Install a package first (`install_package`), or enroll this device with a fleet server "
        "(`enroll`) so that it downloads its model.",
    )


def _attach_bench_jobs(loop: Any, store: Store, updater: Any, config: AgentConfig) -> None:
    """Fleet bench jobs run on the updater thread, between frames (see :mod:`liteship.agent.jobs`)."""
    loop.gate = LiveGate()
    loop.jobs = BenchJobs(
        store,
        updater,
        gate=loop.gate,
        duty_cycle=config.bench_duty_cycle,
        num_threads=config.num_threads,
        accelerator=config.accelerator,
    )
    loop.jobs.recover()


def run_agent(config: AgentConfig) -> int:
    """Recover, then run the inference loop (and the updater when a server is configured) until the
    source ends, the frame limit, or SIGTERM/SIGINT. Returns the number of frames processed.

    A normal end is recorded as a clean shutdown (with the health window's progress), so the next
    start-up is not counted as a crash of a candidate model. Without a model the agent waits for the
    server to assign one; with neither a model nor a server it raises :class:`AgentError` and creates
    nothing.
    """
    setup_logging()
    state = Path(config.state_dir)
    dev = _device(state)
    public = _checked_key(config.key, state, "key")
    server, token = config.server or dev.get("server"), config.token or dev.get("token")
    if not (server and token) and not os.path.lexists(state / "current"):
        raise _nothing_to_run(state)
    source, sink = open_frame_source(config.source, loop=config.loop), open_sink(config.sink)
    store = Store(state, public)
    for action in recover(store):
        event("recovery", action=action)
    if not (server and token) and store.current_version() is None:  # recovery found no verified model
        store.record_clean_shutdown()
        source.close()
        sink.close()
        raise _nothing_to_run(state)
    updater = None
    if server and token:
        limits = TransferLimits(min_rate_bps=config.download_min_rate, window_s=config.download_window)
        client = DeviceClient(server, config.device_id or dev.get("device_id"), token, limits=limits)
        updater = Updater(
            store,
            client,
            Clock(state / "clock.json"),
            model_id=dev.get("model_id"),
            interval=config.poll_interval,
            num_threads=1,
            mirrors=config.mirrors,
            accelerator=config.accelerator,
        )
    health = HealthWindow(
        store,
        inferences=config.health_inferences,
        seconds=config.health_seconds,
        latency_budget_ms=config.latency_budget_ms,
    )
    loop = AgentLoop(
        store,
        source,
        sink,
        Spool(state / "spool", config.spool_max),
        updater=updater,
        health=health,
        window_s=config.window_s,
        num_threads=config.num_threads,
        accelerator=config.accelerator,
        max_frames=config.max_frames,
        max_fps=config.max_fps,
    )
    if updater is not None:
        _attach_bench_jobs(loop, store, updater, config)
        from liteship.agent.capture import Capture  # off until the server sends a signed policy

        loop.capture = Capture(state / "capture")
    signal.signal(signal.SIGTERM, loop.stop)
    signal.signal(signal.SIGINT, loop.stop)
    event("agent started", current=store.current_version(), server=server, source=config.source)
    frames = loop.run()
    store.record_clean_shutdown(health.progress())
    event(
        "agent stopped",
        reason=loop.stop_reason,
        frames=frames,
        dropped_frames=loop.dropped,
        spooled=len(loop.spool),
        current=store.current_version(),
    )
    return frames


__all__ = [
    "AgentConfig",
    "AgentStatus",
    "DoctorReport",
    "agent_doctor",
    "enroll",
    "agent_status",
    "install_package",
    "run_agent",
]
