"""Bounded load test of the fleet server's check-in endpoint, on loopback only.

Starts ``liteship serve`` (SQLite by default, or ``--db postgresql+psycopg://…``) in a subprocess,
publishes two signed releases of one model and starts a rollout at 50 % (so every check-in computes a
real rollout assignment, both arms), registers devices, then runs check-ins for a fixed duration from a
closed-loop client with fixed concurrency, and prints throughput, latency percentiles, errors and the
CPU time used by the server and by the client as JSON.

Every check-in carries a health payload with a sequence number, so every one is a state change that
the server must write (as in a real fleet, where a device checks in once per poll interval).

Clients:

- ``wrk`` (default; Debian package ``wrk``): a C event loop, driven by a generated Lua script that
  rotates through the devices' ids and tokens; it takes far less CPU than the server, which matters
  because client and server share the same cores.
- ``httpx``: an asyncio ``httpx.AsyncClient`` with keep-alive (pure Python, for comparison: it needs
  about as much CPU per request as the server does).

    .venv/bin/python benchmarks/fleet_load.py --devices 200 --seconds 8 --concurrency 16
    .venv/bin/python benchmarks/fleet_load.py --db postgresql+psycopg://postgres@127.0.0.1:5432/bench --workers 2

``--matrix`` runs the check-in load for SQLite (1 worker) and PostgreSQL with 1, 2 and 4 workers (a
throwaway PostgreSQL server is started, as in the tests, unless ``--db`` names one) and prints a table.

``--download`` measures artifact delivery: ``--agents`` (50) concurrent downloads, ``--rounds`` each,
of one ``--size-mb`` (4 MB) blob, by ``curl --parallel`` (C, follows redirects), from

- ``api``: the API streaming from local disk (``liteship serve`` with no flags);
- ``s3-proxy``: the API streaming from SeaweedFS (``--artifacts s3://…``, ``s3_downloads=proxy``);
- ``s3-redirect``: a 307 from the API to a presigned SeaweedFS URL (the default with S3);
- ``mirror``: nginx serving a copy (an untrusted mirror / CDN node).

The blob is put in the store directly and fetched from ``/api/v1/artifacts/<sha256>`` (the same
``serve_blob`` path as ``/tuf/targets/``). CPU seconds of the API server, SeaweedFS, nginx and curl are
reported per mode.

    .venv/bin/python benchmarks/fleet_load.py --matrix --seconds 8
    .venv/bin/python benchmarks/fleet_load.py --download --agents 50 --size-mb 4 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ADMIN = "bench-admin-token-0123456789abcdef"
ENROLL = "bench-enroll-token-0123456789abcdef"
MODEL_FILE = Path(__file__).resolve().parents[1] / "tests/data/third_party/mobilenet_v1_0.25_224_quant.tflite"
MODEL_ID = "bench-model"
RUNTIME = {"litert": "1.4.0"}
# --variants (issue 24): variant releases, tagged devices in a tagged per-group rollout, a cohort's
# update window, and a profile that selects the dotprod variant: every check-in decides all of them
VARIANT_RUNTIME = {"litert": "1.4.0", "machine": "aarch64", "isa": ["neon", "dotprod"]}
WRK_SCRIPT = """
local devices = {%(devices)s}
i, seq, bad = 0, 0, 0  -- globals: done() reads `bad` with thread:get
request = function()
  i = i %% #devices + 1
  seq = seq + 1
  local d = devices[i]
  local body = '{"model_id":"%(model)s","model_version":"1.0.0","runtime":%(runtime)s,' ..
    '"health":{"status":"ok","seq":' .. seq .. '}}'
  return wrk.format("POST", "/api/v1/devices/" .. d[1] .. "/checkin",
    {["Authorization"] = "Bearer " .. d[2], ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '"arm":"', 1, true) then bad = bad + 1 end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do bad_total = bad_total + t:get("bad") end
  local e = summary.errors
  io.write(string.format('WRK {"requests":%%d,"us":%%d,"bad":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50":%%d,"p95":%%d,"p99":%%d,"max":%%d}\\n',
    summary.requests, summary.duration, bad_total, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_packages(tmp: Path, variants: bool = False) -> tuple[Path, list[Path]]:
    from liteship.package import build_package, generate_keypair

    keys = generate_keypair(tmp / "bench.key")
    paths = []
    kinds: list[object] = [None]
    if variants:
        from liteship.package import Variant, parse_when

        kinds = [Variant("float", default=True), Variant("int8-dotprod", when=(parse_when("isa=dotprod"),))]
    for version in ("1.0.0", "1.1.0"):
        for variant in kinds:
            info = build_package(
                MODEL_FILE,
                tmp,
                model_id=MODEL_ID,
                version=version,
                private_key=keys.private_path,
                **({"variant": variant} if variant is not None else {}),
            )
            paths.append(Path(info.path))
    return Path(keys.public_path), paths


def start_server(
    data: Path, port: int, db: str | None, workers: int, key: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    env = {
        **os.environ,
        **(extra_env or {}),
        "LITESHIP_ADMIN_TOKEN": ADMIN,
        "LITESHIP_ENROLLMENT_TOKEN": ENROLL,
        "LITESHIP_ENVIRONMENT": "production",
        # the load compresses hours of a fleet's check-ins into seconds: per-device rate limits
        # (liteship.fleet.limits) would answer 429 to what real devices spread over their poll interval
        "LITESHIP_LIMIT_CHECKINS_PER_MINUTE": "1000000",
        "LITESHIP_LIMIT_BYTES_PER_DAY": str(1 << 40),
    }
    liteship = str(Path(sys.executable).parent / "liteship")
    cmd = [liteship, "serve", "--data", str(data), "--port", str(port), "--workers", str(workers)]
    cmd += ["--trusted-key", str(key)] + (["--db", db] if db else [])
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server did not start")


def prepare(url: str, packages: list[Path], n: int, variants: bool = False) -> list[tuple[str, str]]:
    """Publish the releases, start a rollout at 50 %, register ``n`` devices; returns (id, token)."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=url, timeout=60) as c:
        for path in packages:
            c.post("/api/v1/releases", content=path.read_bytes(), headers=admin).raise_for_status()
        body: dict = {"model_id": MODEL_ID, "candidate_version": "1.1.0", "stages": [50, 100]}
        if variants:
            body.update(tags=["ring=bench"], halt_scope="group")
            window = {"windows": ["00:00-12:00", "12:00-23:59"]}
            c.put("/api/v1/cohorts/ring=bench/windows", json=window, headers=admin).raise_for_status()
        c.post("/api/v1/rollouts", json=body, headers=admin).raise_for_status()
        out = []
        for i in range(n):
            dev = f"bench-{i:05d}"
            reg = {"device_id": dev, "enrollment_token": ENROLL, "model_id": MODEL_ID}
            if variants:
                reg["tags"] = ["ring=bench", f"site=s{i % 10}"]
            r = c.post("/api/v1/devices/register", json=reg)
            r.raise_for_status()
            out.append((dev, r.json()["token"]))
    return out


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process and its descendants (uvicorn's workers, PostgreSQL's backends):
    the live ones, plus those that exited and were waited for (their parent's ``cutime``/``cstime``: a
    PostgreSQL backend closed during a run, e.g. a pool's overflow connection, is counted too)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU seconds spent busy on the whole machine (all processes, all cores) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, devices: list[tuple[str, str]], seconds: float, concurrency: int, tmp: Path) -> dict:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed: `apt-get install -y wrk`, or pass --client httpx.")
    table = ",".join(f'{{"{d}","{t}"}}' for d, t in devices)
    script = tmp / "checkin.lua"
    script.write_text(WRK_SCRIPT % {"devices": table, "model": MODEL_ID, "runtime": json.dumps(RUNTIME)})
    cmd = [wrk, "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"wrk failed: {done.stderr or done.stdout}")
    out = done.stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = json.loads(next(line[4:] for line in out.splitlines() if line.startswith("WRK ")))
    errors = r["bad"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {
        "requests": r["requests"],
        "seconds": r["us"] / 1e6,
        "errors": errors,
        "p50_ms": r["p50"] / 1000,
        "p95_ms": r["p95"] / 1000,
        "p99_ms": r["p99"] / 1000,
        "max_ms": r["max"] / 1000,
        "client_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


async def _httpx(url: str, devices: list[tuple[str, str]], seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + seconds
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as c:

        async def worker(k: int) -> None:
            nonlocal errors
            i, seq = k, 0
            while time.perf_counter() < deadline:
                dev, token = devices[i % len(devices)]
                i, seq = i + concurrency, seq + 1
                body = {
                    "model_id": MODEL_ID,
                    "model_version": "1.0.0",
                    "runtime": RUNTIME,
                    "health": {"status": "ok", "seq": seq},
                }
                start = time.perf_counter()
                try:
                    r = await c.post(
                        f"/api/v1/devices/{dev}/checkin",
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    ok = r.status_code == 200 and r.json().get("arm") is not None
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    lat = sorted(latencies)
    pct = lambda q: 1000 * lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    return {
        "requests": len(lat),
        "seconds": time.perf_counter() - t0,
        "errors": errors,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": 1000 * lat[-1],
        "client_cpu_s": time.process_time() - cpu0,
    }


def checkin_run(args: argparse.Namespace, db: str | None, workers: int, db_pid: int | None = None) -> dict:
    """One check-in load run against a fresh server (and a fresh database). ``db_pid``: the
    PostgreSQL postmaster, whose backends' CPU is then reported per check-in too."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        key, packages = make_packages(tmp, variants=args.variants)
        port = free_port()
        server = start_server(tmp / "data", port, db, workers, key)
        url = f"http://127.0.0.1:{port}"
        try:
            devices = prepare(url, packages, args.devices, variants=args.variants)
            cpu0, busy0 = cpu_seconds(server.pid), machine_busy_seconds()
            db0 = cpu_seconds(db_pid) if db_pid else 0.0
            if args.client == "wrk":
                r = run_wrk(url, devices, args.seconds, args.concurrency, tmp)
            else:
                r = asyncio.run(_httpx(url, devices, args.seconds, args.concurrency))
            server_cpu, busy = cpu_seconds(server.pid) - cpu0, machine_busy_seconds() - busy0
            db_cpu = cpu_seconds(db_pid) - db0 if db_pid else None
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    extra = {}
    if db_cpu is not None:  # PostgreSQL's backends (all of them: this run's only user of the server)
        extra = {"db_cores": round(db_cpu / r["seconds"], 2),
                 "db_cpu_ms_per_checkin": round(1000 * db_cpu / max(1, r["requests"]), 3)}  # fmt: skip
    return {
        "store": "postgresql" if db else "sqlite",
        "workers": workers,
        "client": args.client,
        "variants": args.variants,
        "devices": args.devices,
        "concurrency": args.concurrency,
        "seconds": round(r["seconds"], 2),
        "requests": r["requests"],
        "errors": r["errors"],
        "checkins_per_s": round(r["requests"] / r["seconds"], 1),
        **{k: round(r[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
        "server_cores": round(server_cpu / r["seconds"], 2),
        # independent of how busy the machine was: what one check-in costs the server
        "server_cpu_ms_per_checkin": round(1000 * server_cpu / max(1, r["requests"]), 3),
        "client_cores": round(r["client_cpu_s"] / r["seconds"], 2),
        # everything else busy meanwhile: PostgreSQL's backends, and other jobs on the machine
        "other_cores": round((busy - server_cpu - r["client_cpu_s"]) / r["seconds"], 2),
        **extra,
        "cpus": os.cpu_count(),
        "loadavg_1m_before": round(os.getloadavg()[0], 2),
    }


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[tuple[str, int]]:
    """initdb + pg_ctl in a temp dir on a free loopback port (as ``postgres`` when root); yields a URL
    without a database name and the postmaster's pid. The tests' settings plus ``synchronous_commit=off``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        sys.exit("PostgreSQL is not installed (scripts/os-deps.sh installs it); pass --db instead.")
    bin_dir = Path(found[-1]).parent
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="liteship-bench-pg-"))
    if prefix:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    port = free_port()
    opts = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=300 -c synchronous_commit=off"
    )
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-o", opts, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}", pid
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(base: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


def matrix(args: argparse.Namespace) -> list[dict]:
    """SQLite ×1, then PostgreSQL ×1, ×2, ×4 workers; ``--repeat`` times, interleaved."""
    rows = []
    with contextlib.ExitStack() as stack:
        base, pid = (
            (args.db.rsplit("/", 1)[0], None) if args.db else stack.enter_context(throwaway_postgres())
        )
        for _ in range(args.repeat):
            rows.append(checkin_run(args, None, 1))
            for workers in (1, 2, 4):
                rows.append(checkin_run(args, fresh_database(base), workers, pid))
    return rows


# ---- downloads ------------------------------------------------------------------------------------


def _services() -> object:
    """The tests' SeaweedFS and nginx launchers (tests/integration/fleet/services.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration" / "fleet"))
    import services  # noqa: PLC0415

    return services


def run_curl(urls: list[str], parallel: int, tmp: Path) -> dict:
    """All ``urls`` with ``curl --parallel`` (follows redirects); per transfer: status, bytes, seconds."""
    curl = shutil.which("curl")
    if curl is None:
        sys.exit("curl is not installed.")
    config = tmp / "curl.cfg"
    config.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
    cmd = [curl, "-sS", "-L", "--parallel", "--parallel-immediate", "--parallel-max", str(parallel), "-K", str(config),
           "-w", "%{http_code} %{size_download} %{time_total}\n"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    transfers = [line.split() for line in done.stdout.splitlines() if line.strip()]
    return {
        "wall_s": wall,
        "transfers": [(int(c), int(n), float(t)) for c, n, t in transfers],
        "client_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


def download_benchmark(args: argparse.Namespace) -> list[dict]:
    services = _services()
    size = int(args.size_mb * (1 << 20))
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        blob = tmp / "package.lsp"
        blob.write_bytes(os.urandom(size))
        key, _ = make_packages(tmp)
        weed = services.SeaweedS3(tmp / "weed").start()
        mirror_root = tmp / "mirror"
        mirror_root.mkdir()
        nginx = services.Nginx(mirror_root, tmp / "nginx").start()
        try:
            weed.client().create_bucket(Bucket="bench")
            os.environ.update(weed.env())  # this process puts the blob; the server gets it from env too
            from liteship.fleet.s3 import S3ArtifactStore
            from liteship.fleet.storage import LocalArtifactStore

            for mode in ("api", "s3-proxy", "s3-redirect", "mirror"):
                data = tmp / f"data-{mode}"
                env = {}
                if mode.startswith("s3"):
                    env = {**weed.env(), "LITESHIP_ARTIFACTS": f"s3://bench/{mode}",
                           "LITESHIP_S3_DOWNLOADS": mode.removeprefix("s3-")}  # fmt: skip
                    sha, _ = S3ArtifactStore(f"s3://bench/{mode}", endpoint_url=weed.endpoint).put_file(blob)
                else:
                    sha, _ = LocalArtifactStore(data / "artifacts").put_file(blob)
                shutil.copy(blob, mirror_root / sha)
                port = free_port()
                server = start_server(data, port, None, 1, key, env)
                try:
                    url = (
                        f"{nginx.url}/{sha}"
                        if mode == "mirror"
                        else f"http://127.0.0.1:{port}/api/v1/artifacts/{sha}"
                    )
                    pids = {"api": server.pid, "seaweedfs": weed.proc.pid, "nginx": nginx.proc.pid}
                    cpu0 = {k: cpu_seconds(v) for k, v in pids.items()}
                    busy0 = machine_busy_seconds()
                    r = run_curl([url] * (args.agents * args.rounds), args.agents, tmp)
                    cpu = {k: cpu_seconds(v) - cpu0[k] for k, v in pids.items()}
                    busy = machine_busy_seconds() - busy0
                finally:
                    server.send_signal(signal.SIGTERM)
                    server.wait(timeout=30)
                ok = [t for t in r["transfers"] if t[0] in (200, 206) and t[1] == size]
                times = sorted(t[2] for t in r["transfers"])
                moved = sum(t[1] for t in r["transfers"])
                rows.append(
                    {
                        "mode": mode,
                        "agents": args.agents,
                        "downloads": len(r["transfers"]),
                        "errors": len(r["transfers"]) - len(ok),
                        "size_mb": args.size_mb,
                        "wall_s": round(r["wall_s"], 2),
                        "MB_per_s": round(moved / (1 << 20) / r["wall_s"], 1),
                        "p50_s": round(times[len(times) // 2], 3) if times else None,
                        "p99_s": round(times[min(len(times) - 1, int(0.99 * len(times)))], 3)
                        if times
                        else None,
                        **{f"{k}_cpu_s": round(v, 2) for k, v in cpu.items()},
                        "api_cpu_ms_per_MB": round(1000 * cpu["api"] / max(1e-9, moved / (1 << 20)), 2),
                        "client_cpu_s": round(r["client_cpu_s"], 2),
                        "machine_busy_cores": round(busy / r["wall_s"], 2),
                        "loadavg_1m_before": round(os.getloadavg()[0], 2),
                    }
                )
        finally:
            nginx.stop()
            weed.stop()
    return rows


def _table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", help="database URL (default: SQLite in a temp dir)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--variants",
        action="store_true",
        help="issue 24 features on: variant releases, tagged devices, a tagged per-group rollout, windows",
    )
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight (connections)")
    p.add_argument("--client", choices=("wrk", "httpx"), default="wrk")
    p.add_argument(
        "--matrix", action="store_true", help="check-ins: SQLite ×1, PostgreSQL ×1, ×2, ×4 workers"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs of each --matrix row (interleaved)")
    p.add_argument("--download", action="store_true", help="download throughput: API vs S3 vs mirror")
    p.add_argument("--agents", type=int, default=50, help="concurrent downloads (--download)")
    p.add_argument("--size-mb", type=float, default=4.0, help="package size (--download)")
    p.add_argument("--rounds", type=int, default=2, help="downloads per agent (--download)")
    args = p.parse_args()
    if args.variants:
        RUNTIME.clear()
        RUNTIME.update(VARIANT_RUNTIME)
    if args.download:
        rows = download_benchmark(args)
        print(json.dumps(rows, indent=2))
        cols = ["mode", "downloads", "errors", "wall_s", "MB_per_s", "p50_s", "p99_s", "api_cpu_s",
                "seaweedfs_cpu_s", "nginx_cpu_s", "api_cpu_ms_per_MB", "client_cpu_s", "loadavg_1m_before"]  # fmt: skip
        print(_table(rows, cols))
        return
    if args.matrix:
        rows = matrix(args)
        print(json.dumps(rows, indent=2))
        cols = ["store", "workers", "requests", "errors", "checkins_per_s", "p50_ms", "p99_ms", "server_cores",
                "server_cpu_ms_per_checkin", "db_cpu_ms_per_checkin", "other_cores", "loadavg_1m_before"]  # fmt: skip
        print(_table(rows, cols))
        return
    print(json.dumps(checkin_run(args, args.db, args.workers), indent=2))


if __name__ == "__main__":
    main()
