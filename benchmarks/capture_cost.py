"""What field capture costs the inference thread (issue 25): ``Capture.offer`` per inference, off, on
without a match, and capturing (a copy of the input onto the writer's queue), for the digits model's
8x8x1 input and a 224x224x3 one; and the writer's throughput (atomic .npz files, fsync included).

    python benchmarks/capture_cost.py [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from liteship.agent.capture import Capture


def policy(rules: list[dict], per_hour: int = 3600) -> bytes:
    return json.dumps(
        {
            "model_id": "m",
            "rules": rules,
            "per_hour": per_hour,
            "per_day": 20000,
            "disk_bytes": 1 << 30,
            "retention_s": 86400,
            "expires": time.time() + 3600,
        }
    ).encode()


def offer_us(cap: Capture, x: np.ndarray, n: int, confidence: float = 0.9) -> list[float]:
    scores = np.linspace(0, 1, 10)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        cap.offer(
            model_id="m", version="1", x=x, scores=scores, klass=3, confidence=confidence, out_of_range=False
        )
        out.append((time.perf_counter() - t) * 1e6)
    return out


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50_us": round(statistics.median(values), 2),
        "p99_us": round(values[int(0.99 * (len(values) - 1))], 2),
        "max_us": round(values[-1], 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in (("8x8x1", (1, 8, 8, 1)), ("224x224x3", (1, 224, 224, 3))):
            x = np.random.default_rng(0).random(shape, dtype=np.float32)
            off = Capture(Path(tmp) / f"off-{name}")
            results[f"{name} off"] = summary(offer_us(off, x, 20000))
            nomatch = Capture(Path(tmp) / f"nomatch-{name}")
            nomatch.set_policy(policy([{"trigger": "low-confidence", "threshold": 0.5}]), sha256="a" * 64)
            results[f"{name} on, no match"] = summary(offer_us(nomatch, x, 20000))
            on = Capture(Path(tmp) / f"on-{name}", queue_size=100000)
            on.set_policy(policy([{"trigger": "random"}], per_hour=3600), sha256="b" * 64)
            kept = offer_us(on, x, 3600)  # every one kept (quota 3600/h): the copy and the queue put
            results[f"{name} capturing"] = summary(kept)
            t = time.perf_counter()
            on.drain(timeout=600)
            written = len(on.pending())
            results[f"{name} capturing"]["writer_samples_per_s"] = round(
                written / (time.perf_counter() - t), 1
            )
            results[f"{name} capturing"]["sample_bytes"] = on.pending()[0].stat().st_size
            on.close()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for k, v in results.items():
            print(f"{k:24s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
