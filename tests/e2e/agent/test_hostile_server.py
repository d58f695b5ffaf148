"""A real agent process against the real fleet server behind a proxy that lies for it (issue 21, items 1–3).

The proxy forwards every request to the server on loopback and rewrites chosen answers: a check-in
answer gains bench jobs whose ids are paths; a target is sent one byte at a time; ``timestamp.json`` is
replaced by a body of 64 MB. The agent must treat all of it as hostile: no slot or outside file is
deleted, a slow download is abandoned and check-ins go on, an oversized body is refused while it streams.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from agent_e2e_conftest import ENROLL, agent_cmd, wait_for
from agent_test_helpers import build

from liteship.agent.store import Store

OLD, NEW = "1.0.0", "1.1.0"
HUGE = 64 << 20  # the lying timestamp.json
WAIT_S = 120.0  # only a guard against a hung agent


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        proxy: LyingProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {
            k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type", "range")
        }
        r = proxy.upstream.request(self.command, self.path, headers=headers, content=body or None)
        content = r.content
        if self.path.endswith("/checkin") and r.status_code == 200 and proxy.jobs is not None:
            answer = r.json()
            answer["jobs"] = proxy.jobs
            content = json.dumps(answer).encode()
            proxy.count("checkin-rewritten")
        elif self.path.endswith("/checkin"):
            proxy.count("checkin")
        if self.path.endswith("/timestamp.json") and proxy.huge_timestamp:
            return self._send_huge()
        self.send_response_only(r.status_code)
        for k in ("content-type", "content-range", "date"):
            if k in r.headers:
                self.send_header(k, r.headers[k])
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        try:
            if self.path.startswith("/tuf/targets/") and proxy.trickle_s:
                for i in range(len(content)):  # one byte at a time: a server that never quite stops
                    self.wfile.write(content[i : i + 1])
                    self.wfile.flush()
                    proxy.count("trickled")
                    time.sleep(proxy.trickle_s)
            else:
                self.wfile.write(content)
        except OSError:  # the agent hung up
            self.close_connection = True

    def _send_huge(self) -> None:
        proxy: LyingProxy = self.server.proxy  # type: ignore[attr-defined]
        self.send_response_only(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(HUGE))
        self.end_headers()
        piece = b" " * (1 << 20)
        try:
            for _ in range(HUGE // len(piece)):
                self.wfile.write(piece)
                proxy.count("huge-sent", len(piece))
        except OSError:  # refused while streaming: the agent closed the connection
            self.close_connection = True
        proxy.count("huge-done")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LyingProxy:
    """An HTTP proxy in front of ``upstream`` that rewrites what the test asks for (see the module)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=WAIT_S)
        self.jobs: list[dict] | None = None
        self.trickle_s = 0.0
        self.huge_timestamp = False
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.proxy = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.upstream.close()


@pytest.fixture
def proxy(fleet):
    p = LyingProxy(fleet.url)
    yield p
    p.close()


@pytest.fixture(scope="module")
def pkgs(fleet, keys, tflite_float, golden, tmp_path_factory):
    """1.0.0 and 1.1.0 of model ``hostile`` built and published; 1.1.0 is stable."""
    out = tmp_path_factory.mktemp("hostile-pkgs")
    built = {
        v: build(tflite_float.read_bytes(), out, v, keys.private_path, golden, model_id="hostile")
        for v in (OLD, NEW)
    }
    fleet.publish(built[OLD])
    fleet.publish(built[NEW], channel="stable")
    return built


def device(proxy, keys, pkgs, cli, state: Path, versions: tuple[str, ...]) -> Store:
    """A device enrolled through the proxy with ``versions`` installed in turn (the last is current)."""
    r = cli(
        "agent", "enroll", "--state-dir", str(state), "--server", proxy.url, "--enrollment-token", ENROLL,
        "--device-id", state.name, "--model-id", "hostile", "--key", keys.public_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    store = Store(state, keys.public_path)
    for v in versions:
        store.install(pkgs[v])
        store.commit()
    return store


def run_agent(state: Path, frames: Path, *extra: str) -> subprocess.Popen:
    args = agent_cmd(state, frames, *extra, "--sink", f"file:{state / 'results.jsonl'}")
    with open(state / "agent.jsonl", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        )


def log_lines(state: Path) -> list[dict]:
    out = []
    for line in (state / "agent.jsonl").read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def refusals(state: Path) -> set[str]:
    """The job ids the agent has logged as refused so far."""
    return {e.get("job_id", "") for e in log_lines(state) if e.get("msg") == "bench job refused"}


def stop(proc) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def test_job_ids_that_are_paths_delete_nothing(proxy, keys, pkgs, cli, digit_pngs, tmp_path):
    """Item 1: ``../../versions/<v>`` and ``../../.././canary`` as job ids, once ``bench/files`` exists."""
    state = tmp_path / "dev-jobpath"
    store = device(proxy, keys, pkgs, cli, state, (OLD, NEW))
    canary = tmp_path / "canary"
    canary.write_text("outside the state folder")
    # an absolute job id names a folder of this test's own, never a system one: if the containment check
    # ever regressed, the agent would delete what the id names (an earlier version of this test named
    # /etc, and running it against the unfixed agent deleted the machine's /etc)
    absolute = tmp_path / "absolute-canary"
    absolute.mkdir()
    (absolute / "keep").write_text("outside the state folder")
    # a well-formed (unsigned, so refused) job first: fetching it creates <state>/bench/files/
    variant = {"name": "a", "target_path": "bench-jobs/job-1/a", "sha256": "0" * 64, "size": 100}
    ids = [f"../../versions/{OLD}", f"../../versions/{NEW}", "../../.././canary", str(absolute)]
    proxy.jobs = [
        {"job_id": "job-0000000000000001", "variants": [variant], "runs": 5},
        *({"job_id": i, "variants": [], "runs": 5} for i in ids),
    ]
    agent = run_agent(state, digit_pngs)
    try:
        refused = wait_for(lambda: refusals(state) >= set(ids), timeout=WAIT_S)
    finally:
        stop(agent)
    assert refused
    assert canary.read_text() == "outside the state folder"
    assert (absolute / "keep").read_text() == "outside the state folder"
    for v in (OLD, NEW):
        assert (state / "versions" / v).is_dir(), f"slot {v} was deleted"
        assert store.slot_problem(state / "versions" / v) is None
    assert (store.current_version(), store.previous_version()) == (NEW, OLD)


def test_a_trickled_target_is_abandoned_and_check_ins_go_on(proxy, keys, pkgs, cli, digit_pngs, tmp_path):
    """Item 2: a target sent one byte every 0.2 s; the agent gives up within its window and checks in."""
    state = tmp_path / "dev-trickle"
    store = device(proxy, keys, pkgs, cli, state, (OLD,))
    proxy.trickle_s = 0.2
    agent = run_agent(state, digit_pngs, "--download-min-rate", "1000", "--download-window", "2")
    try:
        wait_for(lambda: proxy.counts.get("trickled", 0) >= 1, timeout=WAIT_S)
        started = time.monotonic()
        before = proxy.counts.get("checkin", 0)
        wait_for(lambda: proxy.counts.get("checkin", 0) > before, timeout=30)  # main: none for hours
        waited = time.monotonic() - started
        failed = wait_for(
            lambda: [
                e
                for e in log_lines(state)
                if e.get("msg") == "check-in" and e.get("action") == "download-failed"
            ],
            timeout=WAIT_S,
        )
    finally:
        stop(agent)
    assert waited < 20, f"check-ins stopped for {waited:.0f} s during a trickled download"
    assert "B/s" in failed[0]["reason"], failed[0]["reason"]
    assert store.current_version() == OLD


def test_an_oversized_timestamp_is_refused_while_it_streams(proxy, keys, pkgs, cli, digit_pngs, tmp_path):
    """Item 3: a 64 MB ``timestamp.json``; the agent stops reading it near TUF's 16 KiB bound."""
    state = tmp_path / "dev-huge"
    store = device(proxy, keys, pkgs, cli, state, (OLD,))
    proxy.huge_timestamp = True
    agent = run_agent(state, digit_pngs)
    try:
        wait_for(lambda: proxy.counts.get("huge-done", 0) >= 1, timeout=WAIT_S)
        failed = wait_for(
            lambda: [
                e
                for e in log_lines(state)
                if e.get("msg") == "check-in" and e.get("action") == "download-failed"
            ],
            timeout=WAIT_S,
        )
    finally:
        stop(agent)
    # what the proxy could push before the agent hung up: socket buffers, not the 64 MB body
    assert proxy.counts.get("huge-sent", 0) < 16 << 20, proxy.counts
    assert "16384" in failed[0]["reason"] or "timestamp" in failed[0]["reason"], failed[0]["reason"]
    assert store.current_version() == OLD
