"""Fleet bench jobs (issue 12): device figures vs ``liteship bench``, the live loop during a job, and the
time from queueing to results.

Starts a real fleet server on loopback and two real agents (``liteship agent run``, 1 thread each) that
serve MobileNetV1 0.25 float32 on image frames, then

1. measures each agent's inference loop for ``--window`` seconds without a job (throughput, p99 of
   the frame interval — prepare + infer + any wait for the bench gate — and p99 of inference alone);
2. queues a job of the two MobileNetV1 0.25 variants (float32, uint8) on both agents and measures the
   loops again while it runs, and the time from queueing until both agents' results are stored;
3. alternates ``--repeat`` rounds of a job on one agent and ``liteship bench`` on this machine (same
   models, threads and runs, while the agents serve), and compares the medians of the p50s.

    .venv/bin/python benchmarks/fleet_bench_jobs.py --runs 200 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "tests" / "data" / "third_party"
FLOAT = MODELS / "mobilenet_v1_0.25_224_1_metadata_1.tflite"
QUANT = MODELS / "mobilenet_v1_0.25_224_quant.tflite"
ADMIN, ENROLL = "admin-token-for-bench-0123456789", "enroll-token-for-bench-0123456789"
EXE = str(Path(sys.executable).parent / "liteship")
SERVER = """
import sys, uvicorn
from liteship.fleet.app import create_app
from liteship.fleet.settings import Settings
s = Settings(data_dir=sys.argv[1], admin_token={a!r}, enrollment_token={e!r}, trusted_keys=[sys.argv[2]])
uvicorn.run(create_app(s), host="127.0.0.1", port=int(sys.argv[3]), log_level="warning", access_log=False)
"""


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def frames(folder: Path, n: int = 16) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(folder / f"f{i:02d}.png")
    return folder


def loop_figures(sink: Path, start: float, end: float) -> dict[str, float]:
    rows = [json.loads(line) for line in sink.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if start <= r["ts"] <= end]
    ts = [r["ts"] for r in rows]
    gaps = np.diff(ts) * 1000.0
    return {
        "frames": len(rows),
        "fps": (len(rows) - 1) / (ts[-1] - ts[0]) if len(rows) > 1 else float("nan"),
        "interval_p50_ms": float(np.percentile(gaps, 50)) if len(gaps) else float("nan"),
        "interval_p99_ms": float(np.percentile(gaps, 99)) if len(gaps) else float("nan"),
        "infer_p99_ms": float(np.percentile([r["latency_ms"] for r in rows], 99)) if rows else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--window", type=float, default=10.0, help="Seconds of loop measured without a job.")
    ap.add_argument("--duty-cycle", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3, help="Rounds of device vs local comparison.")
    args = ap.parse_args()
    from liteship.package import build_package, generate_keypair

    tmp = Path(tempfile.mkdtemp(prefix="liteship-benchjobs-"))
    keys = generate_keypair(tmp / "pub.key")
    golden = np.random.default_rng(1).random((2, 224, 224, 3), dtype=np.float32)
    lsp = build_package(
        FLOAT, tmp, model_id="mnet", version="1.0.0", private_key=keys.private_path, golden_inputs=golden
    ).path
    port = 18700 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(SERVER.format(a=ADMIN, e=ENROLL)),
            str(tmp / "fleet"),
            keys.public_path,
            str(port),
        ]
    )
    procs: list[subprocess.Popen] = []
    admin = {"Authorization": f"Bearer {ADMIN}"}
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        httpx.post(
            f"{url}/api/v1/releases",
            content=Path(lsp).read_bytes(),
            params={"channel": "stable"},
            headers=admin,
            timeout=60,
        ).raise_for_status()
        img = frames(tmp / "frames")
        sinks = {}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        for dev in ("dev-1", "dev-2"):
            state = tmp / dev
            sh(
                EXE,
                "agent",
                "enroll",
                "--state-dir",
                str(state),
                "--server",
                url,
                "--enrollment-token",
                ENROLL,
                "--device-id",
                dev,
                "--model-id",
                "mnet",
                "--key",
                keys.public_path,
            )
            sinks[dev] = tmp / f"{dev}.jsonl"
            procs.append(
                subprocess.Popen(
                    [
                        EXE,
                        "agent",
                        "run",
                        "--state-dir",
                        str(state),
                        "--source",
                        f"images:{img}",
                        "--loop",
                        "--threads",
                        "1",
                        "--poll-interval",
                        "1",
                        "--bench-duty-cycle",
                        str(args.duty_cycle),
                        "--sink",
                        f"file:{sinks[dev]}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=open(state / "log", "ab"),  # noqa: SIM115 - the child keeps it
                    env=env,
                )
            )
        while not all(s.exists() and len(s.read_text().splitlines()) > 20 for s in sinks.values()):
            time.sleep(0.5)
        t0 = time.time()
        time.sleep(args.window)
        idle = {d: loop_figures(s, t0, time.time()) for d, s in sinks.items()}

        env_admin = {**os.environ, "LITESHIP_SERVER": url, "LITESHIP_TOKEN": ADMIN}

        def run_job(*devices: str) -> tuple[dict, float]:
            queued = time.time()
            flags = [x for d in devices for x in ("--device", d)]
            job = json.loads(
                subprocess.run(
                    [
                        EXE,
                        "fleet",
                        "bench",
                        str(FLOAT),
                        str(QUANT),
                        *flags,
                        "--runs",
                        str(args.runs),
                        "--threads",
                        "1",
                        "--json",
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env_admin,
                ).stdout
            )
            while True:
                done = httpx.get(f"{url}/api/v1/bench/jobs/{job['id']}", headers=admin, timeout=30).json()
                if done["state"] == "complete":
                    return done, time.time() - queued
                time.sleep(0.2)

        def local_bench() -> dict[str, float]:  # liteship bench: same machine, models, threads, runs
            out = subprocess.run(
                [EXE, "bench", str(FLOAT), str(QUANT), "--threads", "1", "--runs", str(args.runs), "--json"],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            ).stdout
            return {Path(e["model"]).name: e["latency"]["p50_ms"] for e in json.loads(out)["entries"]}

        # rounds of (job on dev-1 alone, then liteship bench), both while the agents serve their loops
        singles, locals_ = [], []
        for _ in range(args.repeat):
            singles.append(run_job("dev-1")[0])
            locals_.append(local_bench())
        task = singles[0]["tasks"][0]
        during = loop_figures(sinks["dev-1"], task["created_at"], task["updated_at"])
        both, elapsed = run_job("dev-1", "dev-2")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)

    cpu = next(
        (line.split(":", 1)[1].strip() for line in sh("lscpu").splitlines() if "Model name" in line), "?"
    )
    print(f"CPU: {cpu}; load average {os.getloadavg()[0]:.1f}; duty cycle {args.duty_cycle}")
    print(f"queue → results stored for both agents: {elapsed:.1f} s ({args.runs} runs × 2 variants)")

    def p50(job: dict, device: str, name: str) -> float:
        t = next(t for t in job["tasks"] if t["device_id"] == device)
        return next(r for r in t["results"] if r["name"] == name)["p50_ms"]

    print(f"\n{args.repeat} rounds (job on dev-1 alone, then `liteship bench`), p50 in ms; ratio of medians")
    print("\n| variant | local p50 per round | device p50 per round | median device vs median local |")
    print("|---|---|---|---:|")
    for name in locals_[0]:
        loc = [r[name] for r in locals_]
        dev = [p50(j, "dev-1", name) for j in singles]
        ratio = statistics.median(dev) / statistics.median(loc) - 1
        print(
            f"| {name} | {', '.join(f'{v:.3f}' for v in loc)} | {', '.join(f'{v:.3f}' for v in dev)} | "
            f"{100 * ratio:+.1f} % |"
        )
    print("\n| variant | dev-1 p50 (job on both) | dev-2 p50 (job on both) |")
    print("|---|---:|---:|")
    for name in locals_[0]:
        print(f"| {name} | {p50(both, 'dev-1', name):.3f} | {p50(both, 'dev-2', name):.3f} |")
    print("\n| dev-1 loop | frames/s | frame interval p50 | frame interval p99 | inference p99 |")
    print("|---|---:|---:|---:|---:|")
    for label, f in (("no job", idle["dev-1"]), ("during its job", during)):
        print(
            f"| {label} | {f['fps']:.1f} | {f['interval_p50_ms']:.2f} ms | "
            f"{f['interval_p99_ms']:.2f} ms | {f['infer_p99_ms']:.2f} ms |"
        )


if __name__ == "__main__":
    main()
