"""Bounded load test of the fleet server's check-in endpoint, on loopback only.

Starts ``liteship serve`` (SQLite by default, or ``--db postgresql+psycopg://…``) in a subprocess,
registers devices, then runs check-ins from a few client processes (closed loop, fixed concurrency) for a
fixed duration, and prints throughput, latency percentiles and errors as JSON.

    .venv/bin/python benchmarks/fleet_load.py --devices 500 --seconds 10 --concurrency 32
    .venv/bin/python benchmarks/fleet_load.py --db postgresql+psycopg://postgres@127.0.0.1:5432/bench --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ADMIN = "bench-admin-token-0123456789abcdef"
ENROLL = "bench-enroll-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int, db: str | None, workers: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "LITESHIP_ADMIN_TOKEN": ADMIN,
        "LITESHIP_ENROLLMENT_TOKEN": ENROLL,
        "LITESHIP_ENVIRONMENT": "production",
    }
    cmd = [
        str(Path(sys.executable).parent / "liteship"),
        "serve",
        "--data",
        str(data),
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if db:
        cmd += ["--db", db]
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


def register(url: str, n: int) -> list[tuple[str, str]]:
    out = []
    with httpx.Client(base_url=url) as c:
        for i in range(n):
            dev = f"bench-{i:05d}"
            r = c.post(
                "/api/v1/devices/register",
                json={"device_id": dev, "enrollment_token": ENROLL, "model_id": "m"},
            )
            r.raise_for_status()
            out.append((dev, r.json()["token"]))
    return out


async def _client(url: str, devices: list[tuple[str, str]], seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as c:

        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < deadline:
                dev, token = devices[i % len(devices)]
                i += concurrency
                body = {"model_id": "m", "model_version": "1.0.0", "health": {"status": "ok"}}
                t0 = time.perf_counter()
                try:
                    r = await c.post(
                        f"/api/v1/devices/{dev}/checkin",
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return {"latencies": latencies, "errors": errors}


def _run_client(args: tuple) -> dict:
    return asyncio.run(_client(*args))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", help="database URL (default: SQLite in a temp dir)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--devices", type=int, default=500)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=32, help="in-flight requests per client process")
    p.add_argument("--clients", type=int, default=1, help="client processes")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(Path(tmp) / "data", port, args.db, args.workers)
        url = f"http://127.0.0.1:{port}"
        try:
            devices = register(url, args.devices)
            chunks = [devices[i :: args.clients] for i in range(args.clients)]
            t0 = time.perf_counter()
            with mp.Pool(args.clients) as pool:
                results = pool.map(_run_client, [(url, ch, args.seconds, args.concurrency) for ch in chunks])
            elapsed = time.perf_counter() - t0
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    lat = sorted(x for r in results for x in r["latencies"])
    pct = lambda q: round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2)  # noqa: E731
    print(
        json.dumps(
            {
                "store": "postgresql" if args.db else "sqlite",
                "workers": args.workers,
                "devices": args.devices,
                "seconds": round(elapsed, 2),
                "requests": len(lat),
                "errors": sum(r["errors"] for r in results),
                "checkins_per_s": round(len(lat) / elapsed, 1),
                "p50_ms": pct(0.50),
                "p95_ms": pct(0.95),
                "p99_ms": pct(0.99),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
