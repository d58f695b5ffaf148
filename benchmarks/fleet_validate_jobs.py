"""Fleet validation jobs (issue 23): the cost of a validation job on the device's live loop, and the
time from queueing to figures.

A real fleet server on loopback and one real agent (``liteship agent run --threads 1``, image frames,
poll 1 s) serving MobileNetV1 0.25 float32 (tests/data/third_party). The loop is measured for
``--window`` seconds without a job, then during ``--repeat`` validation jobs
(``liteship fleet validate`` of the uint8 MobileNetV1 0.25 against the float32 one, on ``--samples``
images made from tests/data/third_party/photos): frames/s, p50/p99 of the frame interval (prepare +
inference + any wait for a job step) and p99 of inference alone, as for bench jobs
(benchmarks/fleet_bench_jobs.py).

    .venv/bin/python benchmarks/fleet_validate_jobs.py --samples 300 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench_jobs import ADMIN, ENROLL, EXE, FLOAT, QUANT, REPO, SERVER, frames, loop_figures, sh  # noqa: E402


def photos(n: int, out: Path) -> Path:
    """``n`` 224×224 RGB samples (uint8 pixels, the model's rule normalizes them) from the photos."""
    from PIL import Image

    files = sorted((REPO / "tests" / "data" / "third_party" / "photos").rglob("*.jpg"))
    base = [np.asarray(Image.open(f).convert("RGB").resize((224, 224))) for f in files]
    x = np.stack([np.roll(base[i % len(base)], i // len(base), axis=1) for i in range(n)]).astype(np.uint8)
    np.savez(out, x=x)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--window", type=float, default=10.0, help="Seconds of loop measured without a job.")
    ap.add_argument("--duty-cycle", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3, help="Validation jobs run one after another.")
    args = ap.parse_args()
    from liteship.package import build_package, generate_keypair

    tmp = Path(tempfile.mkdtemp(prefix="liteship-validatejobs-"))
    keys = generate_keypair(tmp / "pub.key")
    golden = np.random.default_rng(1).random((2, 224, 224, 3), dtype=np.float32)
    lsp = build_package(
        FLOAT, tmp, model_id="mnet", version="1.0.0", private_key=keys.private_path, golden_inputs=golden
    ).path
    data = photos(args.samples, tmp / "val.npz")
    port = 19700 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    code = textwrap.dedent(SERVER.format(a=ADMIN, e=ENROLL))
    server = subprocess.Popen([sys.executable, "-c", code, str(tmp / "fleet"), keys.public_path, str(port)])
    admin = {"Authorization": f"Bearer {ADMIN}"}
    proc = None
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        httpx.post(f"{url}/api/v1/releases", content=Path(lsp).read_bytes(), params={"channel": "stable"},
                   headers=admin, timeout=60).raise_for_status()  # fmt: skip
        img = frames(tmp / "frames")
        state, sink = tmp / "dev-1", tmp / "dev-1.jsonl"
        sh(EXE, "agent", "enroll", "--state-dir", str(state), "--server", url, "--enrollment-token", ENROLL,
           "--device-id", "dev-1", "--model-id", "mnet", "--key", keys.public_path)  # fmt: skip
        proc = subprocess.Popen(
            [EXE, "agent", "run", "--state-dir", str(state), "--source", f"images:{img}", "--loop",
             "--threads", "1", "--poll-interval", "1", "--bench-duty-cycle", str(args.duty_cycle),
             "--sink", f"file:{sink}"],
            stdout=subprocess.DEVNULL, stderr=open(state / "log", "ab"),  # noqa: SIM115
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )  # fmt: skip
        while not (sink.exists() and len(sink.read_text().splitlines()) > 20):
            time.sleep(0.5)
        t0 = time.time()
        time.sleep(args.window)
        idle = loop_figures(sink, t0, time.time())
        env_admin = {**os.environ, "LITESHIP_SERVER": url, "LITESHIP_TOKEN": ADMIN}
        windows, elapsed, figs = [], [], []
        for _ in range(args.repeat):
            queued = time.time()
            out = subprocess.run(
                [EXE, "fleet", "validate", str(QUANT), "--data", str(data), "--reference", str(FLOAT),
                 "--device", "dev-1", "--threads", "1", "--wait", "600", "--json"],
                capture_output=True, text=True, env=env_admin,
            )  # fmt: skip
            if out.returncode != 0:
                raise SystemExit(f"fleet validate failed ({out.returncode}): {out.stderr[-2000:]}")
            job = json.loads(out.stdout)
            task = job["tasks"][0]
            elapsed.append(time.time() - queued)
            running = [
                json.loads(line)["ts"]
                for line in (state / "log").read_text(errors="replace").splitlines()
                if f'"job_id": "{job["id"]}"' in line
                and ('"bench job started"' in line or '"bench job finished"' in line)
            ]
            windows.append(
                (min(running), max(running))
                if len(running) >= 2
                else (task["created_at"], task["updated_at"])
            )
            figs.append(task["results"][0].get("validation") or task["results"][0])
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)
    rows = [json.loads(line) for line in sink.read_text().splitlines() if line.strip()]
    during_rows = [r for r in rows if any(a <= r["ts"] <= b for a, b in windows)]
    gaps = np.concatenate(
        [np.diff([r["ts"] for r in rows if a <= r["ts"] <= b]) * 1000.0 for a, b in windows]
    )
    seconds = sum(b - a for a, b in windows)
    during = {
        "fps": len(during_rows) / seconds if seconds else float("nan"),
        "interval_p50_ms": float(np.percentile(gaps, 50)),
        "interval_p99_ms": float(np.percentile(gaps, 99)),
        "infer_p99_ms": float(np.percentile([r["latency_ms"] for r in during_rows], 99)),
    }
    cpu = next(
        (line.split(":", 1)[1].strip() for line in sh("lscpu").splitlines() if "Model name" in line), "?"
    )
    print(f"CPU: {cpu}; load average {os.getloadavg()[0]:.1f}; duty cycle {args.duty_cycle}")
    print(
        f"{args.repeat} validation jobs of {figs[0].get('samples')} samples; job on the device "
        f"{', '.join(f'{b - a:.1f}' for a, b in windows)} s; queue → figures {', '.join(f'{t:.1f}' for t in elapsed)} s"
    )
    a = (figs[0].get("agreement") or [{}])[0]
    print(f"figures: top-1 {a.get('top1')}, top-5 {a.get('top5')}, passed {figs[0].get('passed')}")
    print("\n| dev-1 loop | frames/s | frame interval p50 | frame interval p99 | inference p99 |")
    print("|---|---:|---:|---:|---:|")
    for label, f in (("no job", idle), ("during its validation jobs", during)):
        print(f"| {label} | {f['fps']:.1f} | {f['interval_p50_ms']:.2f} ms | {f['interval_p99_ms']:.2f} ms | "
              f"{f['infer_p99_ms']:.2f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
