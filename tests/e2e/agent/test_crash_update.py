"""SIGKILL the whole agent at random moments of a real update, the real fleet server on loopback (issue 6:
≥ 50 trials; after restart the agent always runs a verified model, old or new, never a partial one, and
the update is finished or cleanly abandoned).

The server sits behind a small proxy in this test that sends target downloads slowly (so kills land
mid-download) and logs each target request (its ``Range`` header, status and bytes sent: the server's
side of a resume). The agent logs an ``update step`` line as each step starts (download, verify, extract,
smoke-test, swap); the test kills it a random time after the line of the step it aims at, and records
the step the kill hit from the last line the agent wrote before it died. Where a step's window is short
or depends on the machine's load, the kill waits on the disk instead of a clock: a download is killed
once its ``.part`` holds a random fraction of the package, a swap once the disk shows the swap state the
chain aims at (slot, intent, previous, current in turn), so a loaded machine does not move them.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from agent_e2e_conftest import ENROLL, agent_cmd
from agent_test_helpers import build

from liteship.agent.fsutil import CRASH_POINT_PAUSE_ENV
from liteship.agent.store import Store

PHASES = ("download", "verify", "extract", "smoke-test", "swap")
OLD, NEW = "1.0.0", "1.1.0"
MIN_KILLS = 50
FRAMES = 20  # every agent run is `liteship agent run … --max-frames 20`
PAUSE_S = 0.01  # at each crash point (see liteship.agent.fsutil.crash_point)
CHUNK, CHUNK_DELAY_S = 2048, 0.01  # the proxy sends the ~46 kB package in ~0.25 s
# what a kill left on disk, in the order an update goes through these states
DISK_STATES = (
    "nothing",  # no download yet (or a part of 0 bytes)
    "part",  # incoming/<sha>.part with some of the bytes
    "downloaded",  # incoming/<sha>.part complete, or renamed to <sha>.lsp
    "staged",  # incoming/stage-<pid> (extracted, being smoke-tested) or its temp folder
    "slot",  # versions/1.1.0 renamed into place, no intent yet
    "intent",  # state.json: pending = 1.1.0, links not switched
    "previous",  # previous -> 1.0.0, current still 1.0.0
    "current",  # current -> 1.1.0: swapped
)
SWAP_STATES = {"slot", "intent", "previous", "current"}
SWAP_AIMS = ("slot", "intent", "previous", "current")  # each chain's swap kill waits for one of them
# Only a guard against a hung agent: under `nice -n 19` beside normal-priority work an agent can get
# no CPU for tens of seconds, so waits end on log lines, disk states and process exits, not on this.
WAIT_S = 300.0


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        proxy: ThrottlingProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        keep = ("authorization", "content-type", "range")
        headers = {k: v for k, v in self.headers.items() if k.lower() in keep}
        r = proxy.upstream.request(self.command, self.path, headers=headers, content=body or None)
        self.send_response_only(r.status_code)
        for k in ("content-type", "content-range", "date"):
            if k in r.headers:
                self.send_header(k, r.headers[k])
        self.send_header("content-length", str(len(r.content)))
        self.end_headers()
        if not self.path.startswith("/tuf/targets/"):
            self.wfile.write(r.content)
            return
        entry = {"range": headers.get("Range"), "status": r.status_code, "sent": 0, "body": len(r.content)}
        proxy.log.append(entry)
        try:
            for i in range(0, len(r.content), proxy.chunk):
                piece = r.content[i : i + proxy.chunk]
                entry["sent"] += len(piece)  # counted first: the agent may have it before write returns
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(proxy.delay)
        except OSError:  # the agent was killed mid-download
            self.close_connection = True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed agent drops its connections
            super().handle_error(request, client_address)


class ThrottlingProxy:
    """An HTTP proxy on loopback in front of ``upstream``: target bodies go out ``chunk`` bytes every
    ``delay`` seconds; ``log`` has one entry per target request (``range``, ``status``, ``sent``,
    ``body``)."""

    def __init__(self, upstream: str, chunk: int, delay: float) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=WAIT_S)
        self.chunk, self.delay = chunk, delay
        self.log: list[dict] = []
        self.httpd = _QuietServer(("127.0.0.1", 0), _ProxyHandler)
        self.httpd.proxy = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.upstream.close()


class AgentProcess:
    """``liteship agent run`` with its JSON log lines read as they come (stamped with arrival time)."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, CRASH_POINT_PAUSE_ENV: str(PAUSE_S), "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: queue.Queue = queue.Queue()
        self.log: list[dict] = []
        self.ended = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            if line.startswith("{"):
                self.lines.put((time.monotonic(), json.loads(line)))
        self.lines.put(None)

    def wait_for(self, predicate, timeout: float = WAIT_S) -> tuple[float, dict] | None:
        """The first log line matching ``predicate`` (None when the process ended without one)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.ended:
                return None
            try:
                item = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no matching log line in {timeout:.0f} s; the agent logged {self.log[-5:]}"
                ) from None
            if item is None:
                self.ended = True
                return None
            self.log.append(item[1])
            if predicate(item[1]):
                return item

    def finish(self, sig: int | None = None, timeout: float = WAIT_S) -> int:
        if sig is not None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout)
        while not self.ended and (item := self.lines.get()) is not None:
            self.log.append(item[1])
        self.ended = True
        return code


def step_of(line: dict) -> str | None:
    return line.get("step") if line.get("msg") == "update step" else None


def phase_hit(log: list[dict]) -> str:
    """The update step a kill hit: the last one the agent logged (``installed`` once it decided)."""
    phase = "check-in"  # before the first step: check-in, TUF refresh
    for line in log:
        phase = step_of(line) or phase
        if line.get("msg") == "check-in" and line.get("action") == "installed":
            phase = "installed"
    return phase


def disk_state(state: Path, length: int) -> tuple[str, int]:
    """What a kill left on disk (one of DISK_STATES) and the size of the partial download."""
    store = Store(state, create=False)
    incoming = {p.name: p for p in store.incoming.iterdir()}
    part = next((p.stat().st_size for n, p in incoming.items() if n.endswith(".part")), 0)
    if store.current_version() == NEW:
        return "current", part
    if store.state()["pending"]:
        return ("previous" if store.previous_version() == OLD else "intent"), part
    if (store.versions / NEW).exists():
        return "slot", part
    if any(n.startswith(("stage-", ".stage-")) for n in incoming):
        return "staged", part
    if any(n.endswith(".lsp") for n in incoming) or part == length:
        return "downloaded", part
    return ("part" if part else "nothing"), part


def leftovers(state: Path) -> list[str]:
    """Anything half-made or unneeded once an update ended: downloads, staging, temp files."""
    found = [p.name for p in (state / "incoming").iterdir()]
    for folder in (state, state / "versions"):
        found += [p.name for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
    return found


def results_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def proxy(fleet):
    p = ThrottlingProxy(fleet.url, CHUNK, CHUNK_DELAY_S)
    yield p
    p.close()


def setup_device(fleet, proxy, keys, tflite_float, golden, out: Path, cli) -> tuple[Path, dict]:
    """The fleet serves 1.0.0 then 1.1.0 (stable); a device enrolled through the proxy runs 1.0.0."""
    pkgs = {
        v: build(tflite_float.read_bytes(), out, v, keys.private_path, golden, model_id="kill")
        for v in (OLD, NEW)
    }
    fleet.publish(pkgs[OLD])
    fleet.publish(pkgs[NEW], channel="stable")
    template = out / "template"
    r = cli(
        "agent", "enroll", "--state-dir", str(template), "--server", proxy.url,
        "--enrollment-token", ENROLL, "--device-id", "dev-kill", "--model-id", "kill",
        "--key", keys.public_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    store = Store(template, keys.public_path)
    store.install(pkgs[OLD])
    store.commit()
    return template, pkgs


class Run:
    """One agent process of a trial chain and what it left behind."""

    def __init__(self, state: Path, frames: Path, proxy: ThrottlingProxy, name: str) -> None:
        self.sink = state.parent / f"{name}.jsonl"
        self.first_request = len(proxy.log)
        self.proxy = proxy
        self.agent = AgentProcess(
            agent_cmd(state, frames, "--max-frames", str(FRAMES), "--health-inferences", "10",
                      "--sink", f"file:{self.sink}")
        )  # fmt: skip
        self.code: int | None = None

    def kill_in(
        self, target: str, durations: dict[str, float], rng: random.Random, disk: DiskWatch, swap_aim: str
    ) -> bool:
        """SIGKILL a random moment into step ``target``; False when the run ended before that step.

        ``download``: once the partial download holds a random 5-90 % of the package; ``swap``: once the
        disk has reached ``swap_aim``; other steps: a random time into the step after its line."""
        if self.agent.wait_for(lambda line: step_of(line) == target) is None:
            self.code = self.agent.finish()
            return False
        if target == "download":
            goal = rng.uniform(0.05, 0.9) * disk.length
            disk.wait(
                self.agent.proc, lambda where, part: part >= goal or where != "part" and where != "nothing"
            )
        elif target == "swap":
            aim = DISK_STATES.index(swap_aim)
            disk.wait(self.agent.proc, lambda where, _part: DISK_STATES.index(where) >= aim)
        else:
            time.sleep(rng.uniform(0.0, durations[target]))
        self.code = self.agent.finish(signal.SIGKILL)
        return self.code == -signal.SIGKILL

    def finish(self) -> int:
        self.code = self.agent.finish()
        return self.code

    @property
    def log(self) -> list[dict]:
        return self.agent.log

    def requests(self) -> list[dict]:
        return self.proxy.log[self.first_request :]

    def loaded(self) -> list[str]:
        return [line["version"] for line in self.log if line.get("msg") == "model loaded"]


class DiskWatch:
    """Polls what an update has left on disk so far (:func:`disk_state`) while the agent runs."""

    def __init__(self, state: Path, length: int) -> None:
        self.state, self.length = state, length

    def wait(self, proc: subprocess.Popen, done, timeout: float = WAIT_S) -> None:
        """Until ``done(disk state, partial download size)``, the process ends, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if done(*disk_state(self.state, self.length)):
                    return
            except (FileNotFoundError, NotADirectoryError):  # a file renamed while being looked at
                pass
            time.sleep(0.0005)


def step_durations(log_times: list[tuple[float, dict]]) -> dict[str, float]:
    """Seconds from each step's line to the next step's (the last step ends at the decision line)."""
    marks = [
        (t, step_of(line) or "end") for t, line in log_times if step_of(line) or line.get("msg") == "check-in"
    ]
    return {name: marks[i + 1][0] - t for i, (t, name) in enumerate(marks[:-1]) if name != "end"}


def test_sigkill_agent_at_random_moments_of_an_update(
    fleet, proxy, keys, tflite_float, golden, digits, digit_pngs, tmp_path, cli
):
    template, pkgs = setup_device(fleet, proxy, keys, tflite_float, golden, tmp_path, cli)
    length = pkgs[NEW].stat().st_size
    verifier = Store(template, keys.public_path)  # checks a slot's signature and every file's sha256

    # a clean update: the reference results and how long each step takes here
    state = tmp_path / "clean"
    shutil.copytree(template, state, symlinks=True)
    clean = Run(state, digit_pngs, proxy, "clean")
    times = []
    while (item := clean.agent.wait_for(lambda _: True)) is not None:
        times.append(item)
    assert clean.finish() == 0 and Store(state).current_version() == NEW
    durations = step_durations(times)
    assert set(durations) == set(PHASES), durations
    reference = {r["frame"]: (r["class"], r["score"]) for r in results_of(clean.sink)}
    assert len(reference) == FRAMES
    labels = digits[3][:FRAMES]
    assert sum(reference[f"{i:04d}.png"][0] == labels[i] for i in range(FRAMES)) >= 0.8 * FRAMES

    rng = random.Random(20260501)
    kills: list[dict] = []  # one record per kill
    chain = 0
    started = time.monotonic()
    while len(kills) < MIN_KILLS:
        chain += 1
        state = tmp_path / f"c{chain}"
        shutil.copytree(template, state, symlinks=True)
        # one kill per step, in the order of an update: each restart is the next victim
        targets = list(PHASES)
        swap_aim = SWAP_AIMS[chain % len(SWAP_AIMS)]
        disk = DiskWatch(state, length)
        runs: list[Run] = []
        for n, target in enumerate([*targets, None]):
            run = Run(state, digit_pngs, proxy, f"c{chain}-{n}")
            runs.append(run)
            killed = target is not None and run.kill_in(target, durations, rng, disk, swap_aim)
            if run.code is None:
                run.finish()
            if len(runs) > 1:
                check_restart(kills[-1], run, reference, verifier, state, length)
            if not killed:
                break
            where, part = disk_state(state, length)
            kills.append({"aim": target, "phase": phase_hit(run.log), "disk": where, "part": part})
            if where == "current":  # swapped: nothing left to interrupt in this chain
                final = Run(state, digit_pngs, proxy, f"c{chain}-end")
                final.finish()
                check_restart(kills[-1], final, reference, verifier, state, length)
                runs.append(final)
                break
        assert runs[-1].code == 0, runs[-1].log
        check_update_ended(state, runs[-1], verifier)
    elapsed = time.monotonic() - started

    phases = collections.Counter(k["phase"] for k in kills)
    disks = collections.Counter(k["disk"] for k in kills)
    summary = (
        f"{len(kills)} kills in {chain} chains, {elapsed:.0f} s; phases {dict(phases)}; disk {dict(disks)}"
    )
    for phase in PHASES:
        assert phases[phase] >= 3, summary  # every step was hit, several times
    assert sum(1 for k in kills if k["phase"] == "download" and 0 < k["part"] < length) >= 3, summary
    assert len(SWAP_STATES & set(disks)) >= 3, summary  # kills landed inside the swap, not only around it
    assert {"part", "staged"} <= set(disks), summary


def check_restart(kill: dict, run: Run, reference: dict, verifier: Store, state: Path, length: int) -> None:
    """The run after a kill ran a verified model (the one recovery must pick), with the reference
    results, and resumed a partial download with a Range request."""
    where = f"after a kill in {kill['phase']} (disk: {kill['disk']})"
    expected = NEW if DISK_STATES.index(kill["disk"]) >= DISK_STATES.index("intent") else OLD
    loaded = run.loaded()
    assert loaded and loaded[0] == expected, (where, loaded, run.log)
    recovery = [line["action"] for line in run.log if line.get("msg") == "recovery"]
    if kill["disk"] in ("intent", "previous"):  # the intent was recorded: the swap is finished
        assert f"finished the interrupted swap to {NEW}" in recovery, (where, recovery)
    if kill["disk"] == "current":  # a kill in the health window counts as one unclean start
        unclean = f"health window of {NEW} continues after an unclean stop (1 of 2 allowed)"
        assert unclean in recovery, (where, recovery)
    if kill["disk"] == "staged":
        assert any(
            a.startswith(("removed leftover incoming/stage-", "removed leftover incoming/.stage-"))
            for a in recovery
        ), (where, recovery)
    results = results_of(run.sink)
    assert results, (where, run.log)
    for r in results:
        assert r["version"] in (OLD, NEW) and (r["class"], r["score"]) == reference[r["frame"]], (where, r)
    for version in {r["version"] for r in results}:
        if (state / "versions" / version).is_dir():  # a later step may have collected the old slot
            assert verifier.slot_problem(state / "versions" / version) is None, (where, version)
    if kill["disk"] == "part":  # resumed where the kill stopped it, from the server's side too
        downloads = [line for line in run.log if step_of(line) == "download"]
        assert downloads and downloads[0]["resume_from"] == kill["part"], (where, downloads)
        if not run.requests():  # killed again before its request went out
            assert run.code == -signal.SIGKILL, (where, run.log)
            return
        first = run.requests()[0]
        assert first["range"] == f"bytes={kill['part']}-" and first["status"] == 206, (where, first)
        assert first["body"] == length - kill["part"], (where, first)
        if any(step_of(line) == "verify" for line in run.log):  # the download completed
            assert first["sent"] == first["body"], (where, first)


def check_update_ended(state: Path, run: Run, verifier: Store) -> None:
    """The chain's last run finished the update (installed or committed) and left nothing behind."""
    store = Store(state, verifier.public_key)
    s = store.state()
    assert (store.current_version(), store.previous_version()) == (NEW, OLD), run.log
    assert s["pending"] is None or (s["pending"]["version"], s["pending"]["previous"]) == (NEW, OLD), s
    assert s["failed"] == {} and leftovers(state) == [], (s, leftovers(state))
    assert sorted(p.name for p in store.versions.iterdir()) == [OLD, NEW]
    for version in (OLD, NEW):
        assert verifier.slot_problem(store.versions / version) is None, version
    decisions = [line.get("action") for line in run.log if line.get("msg") == "check-in"]
    assert decisions and decisions[0] in ("installed", "up-to-date"), run.log
