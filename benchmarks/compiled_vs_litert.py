"""Issue 15 figures: ``liteship bench --accelerator cpu`` (CompiledModel) vs LiteRT's own tool, and GPU vs
CPU numerics on MobileNetV2.

1. Timing parity. Both tools use LiteRT's CompiledModel API on the CPU accelerator, interleaved over
   rounds in fresh processes, exactly as ``bench_vs_litert.py`` does for the Interpreter (it supplies the
   models, the unrounded reading of the tool's median and the report helpers):

       liteship bench MODEL --accelerator cpu --threads N --runs R --warmup W --min-seconds 0 --json
       python -m ai_edge_litert.tools.benchmark_litert_model --model=MODEL --num_threads=N ...

2. GPU numerics (correctness only: a software GPU's speed means nothing). MobileNetV2 (random weights,
   ``keras.applications.MobileNetV2(weights=None, classifier_activation=None)``: logits, since an
   untrained softmax is ~1/1000 everywhere; re-built with a fixed batch of 1 since GPU accelerators take
   static shapes only) as float32 and float16 (float16 weights), each run
   on the GPU accelerator (LiteRT WebGPU over Mesa's llvmpipe Vulkan device) and on the CPU accelerator,
   on the same 32 random inputs; reported: max and mean absolute difference, relative to the output
   range, and top-1 agreement. ``validate --accelerator gpu`` reports the same per variant.

Usage:
    .venv/bin/python benchmarks/compiled_vs_litert.py [--rounds 5] [--threads 1,2] [--runs 100] [--write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_vs_litert as base  # noqa: E402  (the sibling script: models, tool runner, helpers)

HEADING = "## CompiledModel: bench vs LiteRT's tool, and GPU numerics (issue 15)"
MODELS = ("digits_cnn_float32.tflite", "mobilenet_v2_float32.tflite")


def liteship_cmd(model: Path, threads: int, runs: int, warmup: int) -> list[str]:
    return [*base.liteship_cmd(model, threads, runs, warmup), "--accelerator", "cpu"]


def run_liteship(model: Path, threads: int, runs: int, warmup: int) -> float:
    p = subprocess.run(
        liteship_cmd(model, threads, runs, warmup), capture_output=True, text=True, env=base.ENV
    )
    if p.returncode != 0:
        raise SystemExit(f"liteship bench failed: {p.stderr.strip()[-2000:]}")
    entry = json.loads(p.stdout)["entries"][0]
    assert entry["timed"] == "run" and entry["accelerator"] == "cpu", entry
    return float(entry["latency"]["p50_ms"])


def compare(model: Path, threads: int, runs: int, warmup: int, rounds: int) -> dict:
    ours, theirs = [], []
    for r in range(rounds):
        first_ours = r % 2 == 0
        a = run_liteship(model, threads, runs, warmup) if first_ours else None
        b = base.run_litert(model, threads, runs, warmup)
        a = a if a is not None else run_liteship(model, threads, runs, warmup)
        ours.append(a)
        theirs.append(b)
        print(
            f"  {model.name} @{threads} round {r + 1}: liteship {a:.6f} ms, LiteRT {b:.6f} ms",
            file=sys.stderr,
        )
    return summarize(model.name, threads, list(zip(ours, theirs, strict=True)))


def summarize(model: str, threads: int, pairs: list[tuple[float, float]], seed: int = 0) -> dict:
    """One table row from the rounds' (liteship, tool) medians.

    The verdict is the ratio of the two tools' medians over rounds, with a 90 % bootstrap interval
    (rounds resampled in pairs). Tiny models run in one of two speeds per *process* (on this VM the
    digits CNN reads ~7 µs or ~10 µs for both tools, whichever process it is), so single-round ratios
    swing 0.6–1.5 and only many rounds settle the comparison.
    """
    import random

    ours, theirs = [a for a, _ in pairs], [b for _, b in pairs]
    ratio = statistics.median(ours) / statistics.median(theirs)
    rng = random.Random(seed)
    boot = []
    for _ in range(2000):
        sample = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        boot.append(statistics.median(a for a, _ in sample) / statistics.median(b for _, b in sample))
    boot.sort()
    round_ratios = [a / b for a, b in pairs if b > 0]
    modes = speed_modes(ours, theirs)
    return {
        "modes": modes,
        "model": model,
        "threads": threads,
        "rounds": len(pairs),
        "liteship_ms": statistics.median(ours),
        "litert_ms": statistics.median(theirs),
        "ratio": ratio,
        "ci_low": boot[int(0.05 * len(boot))],
        "ci_high": boot[int(0.95 * len(boot)) - 1],
        "ratio_min": min(round_ratios),
        "ratio_max": max(round_ratios),
    }


def speed_modes(ours: list[float], theirs: list[float], gap: float = 1.2, least: int = 3) -> list[dict]:
    """The two tools compared within each per-process speed mode, when the rounds fall into two.

    On this VM a fresh process runs a model at one of two speeds (MobileNetV2 @1 thread ~6 ms or ~9 ms,
    the digits CNN ~7 µs or ~10 µs), whichever tool it is, so a median over rounds mostly counts how
    many processes of each tool landed in the fast mode. The modes are split at the largest gap
    (≥ ``gap``×) between the pooled, sorted round medians; each needs ``least`` rounds of each tool.
    Returns ``[]`` when the rounds do not split that way.
    """
    pooled = sorted(ours + theirs)
    cut_at, widest = None, gap
    for lo, hi in zip(pooled, pooled[1:], strict=False):
        if lo > 0 and hi / lo >= widest:
            cut_at, widest = (lo + hi) / 2, hi / lo
    if cut_at is None:
        return []
    out = []
    for name, keep in (("fast", lambda v: v < cut_at), ("slow", lambda v: v >= cut_at)):
        a, b = [v for v in ours if keep(v)], [v for v in theirs if keep(v)]
        if len(a) < least or len(b) < least:
            return []
        la, lb = statistics.median(a), statistics.median(b)
        out.append(
            {"mode": name, "rounds": [len(a), len(b)], "liteship_ms": la, "litert_ms": lb, "ratio": la / lb}
        )
    return out


def within(row: dict, tolerance: float = 0.05) -> bool:
    """The verdict: every speed mode's ratio within the tolerance, or the overall ratio without modes."""
    ratios = [m["ratio"] for m in row.get("modes") or []] or [row["ratio"]]
    return all(abs(r - 1) <= tolerance for r in ratios)


def rows_from_log(text: str) -> list[dict]:
    """The rows :func:`compare` would return, from its per-round stderr lines."""
    import re

    rounds: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for m in re.finditer(r"^  (\S+) @(\d+) round \d+: liteship ([\d.]+) ms, LiteRT ([\d.]+) ms$", text, re.M):
        rounds.setdefault((m[1], int(m[2])), []).append((float(m[3]), float(m[4])))
    return [summarize(model, threads, pairs) for (model, threads), pairs in rounds.items()]


def static_mobilenet(float16: bool) -> Path:
    """MobileNetV2 (random weights, logits out) with a fixed batch of 1: GPU accelerators take static
    shapes only."""
    path = base.CACHE / f"mobilenet_v2_bn_logits_static_{'float16' if float16 else 'float32'}.tflite"
    if not path.exists():
        import keras
        import numpy as np
        import tensorflow as tf

        keras.utils.set_random_seed(0)
        # Logits, not softmax: an untrained network's softmax is ~1/1000 everywhere, which any two
        # runtimes "agree" on; its logits differ per input and show the kernels' arithmetic.
        model = keras.applications.MobileNetV2(weights=None, classifier_activation=None)
        # Untrained, the signal vanishes through the blocks (logits ~1e-11). BatchNorm statistics set
        # from one batch of random images (momentum 0) keep every layer's activations normalized.
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.0
        batch = np.random.default_rng(1).uniform(-1, 1, (16, 224, 224, 3)).astype(np.float32)
        model(batch, training=True)
        static = keras.models.clone_model(model, input_tensors=keras.Input((224, 224, 3), batch_size=1))
        static.set_weights(model.get_weights())
        conv = tf.lite.TFLiteConverter.from_keras_model(static)
        if float16:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        path.write_bytes(conv.convert())
    return path


# LiteRT 2.3's GPU accelerator crashes a process that has imported TensorFlow (the converter, here), so
# the comparison runs in a fresh process.
_NUMERICS = """
import json, sys
import numpy as np
from liteship.runtime import CompiledModelRunner
model, n = sys.argv[1], int(sys.argv[2])
x = np.random.default_rng(0).uniform(-1, 1, (n, 224, 224, 3)).astype(np.float32)
with CompiledModelRunner(model, accelerator="gpu") as g, CompiledModelRunner(model) as c:
    got = np.concatenate([next(iter(g.infer(x[i : i + 1]).values())) for i in range(n)])
    want = np.concatenate([next(iter(c.infer(x[i : i + 1]).values())) for i in range(n)])
    diff = np.abs(got.astype(np.float64) - want)
    print(json.dumps({
        "backend": g.backend, "fully_accelerated": g.is_fully_accelerated(), "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()), "output_max": float(np.abs(want).max()),
        "top1": float((got.argmax(-1) == want.argmax(-1)).mean()), "samples": n,
    }))
"""


def numerics(model: Path, n: int = 32) -> dict:
    p = subprocess.run(
        [sys.executable, "-c", _NUMERICS, str(model), str(n)], capture_output=True, text=True, env=base.ENV
    )
    if p.returncode != 0:
        raise SystemExit(f"GPU numerics failed: {p.stderr.strip()[-2000:]}")
    return {"model": model.name, **json.loads(p.stdout.strip().splitlines()[-1])}


def markdown(rows: list[dict], num: list[dict], args: argparse.Namespace, seconds: float) -> str:
    cmd = (
        f".venv/bin/python benchmarks/compiled_vs_litert.py --rounds {args.rounds} --threads {args.threads} "
        f"--runs {args.runs} --tiny-runs {args.tiny_runs} --warmup {args.warmup}"
        + (" --no-gpu" if args.no_gpu else "")
        + " --write"
    )
    table = [
        "| model | threads | rounds | liteship p50 (ms) | LiteRT tool median (ms) | ratio of medians | 90 % interval | single-round ratios | within speed modes (rounds liteship/tool: ratio) | within ±5 % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|:---:|",
    ]
    for r in rows:
        ok = "yes" if within(r) else "no"
        modes = (
            "; ".join(
                f"{m['mode']} {m['liteship_ms']:.4g}/{m['litert_ms']:.4g} ms ({m['rounds'][0]}/{m['rounds'][1]}): {m['ratio']:.3f}"
                for m in r["modes"]
            )
            or "one mode"
        )
        table.append(
            f"| {r['model']} | {r['threads']} | {r['rounds']} | {r['liteship_ms']:.4f} | {r['litert_ms']:.4f} | "
            f"{r['ratio']:.3f} | {r['ci_low']:.3f}–{r['ci_high']:.3f} | {r['ratio_min']:.3f}–{r['ratio_max']:.3f} | {modes} | {ok} |"
        )
    ntable = [
        "| model | GPU fully accelerated | max abs diff | mean abs diff | max abs output | top-1 agreement |",
        "|---|:---:|---:|---:|---:|---:|",
    ]
    for r in num:
        ntable.append(
            f"| {r['model']} | {r['fully_accelerated']} | {r['max_abs']:.2e} | {r['mean_abs']:.2e} | "
            f"{r['output_max']:.3g} | {r['top1'] * 100:.1f} % ({r['samples']}) |"
        )
    return "\n".join(
        [
            HEADING,
            "",
            f"Measured {time.strftime('%Y-%m-%d')} in {seconds / 60:.1f} min.",
            "",
            "**Timing parity, CompiledModel on the CPU accelerator.** liteship times `run_by_index` alone on",
            "input buffers written before the timer (`timed: run`; the CPU accelerator is synchronous); the",
            "tool times `run_by_name` on buffers filled once. Each round runs both once, in fresh processes,",
            f"alternating the order; {args.runs} measured runs ({args.tiny_runs} on the digits CNN) after {args.warmup}",
            "warm-up runs. A latency is the median over rounds of each run's median (the tool's unrounded, as in",
            "bench_vs_litert.py), with the ratio of the two and a 90 % bootstrap interval over rounds. A fresh",
            "process on this VM runs a model at one of two speeds, for either tool (see the speed-mode column),",
            "so a median over rounds mostly counts which tool's processes landed in the fast mode; when the",
            "rounds split into two modes, the verdict compares the tools within each mode (`speed_modes`).",
            "",
            *table,
            "",
            "**GPU vs CPU numerics** (correctness only; software-GPU latency means nothing). MobileNetV2",
            "(random weights, BatchNorm statistics set from one random batch; the 1000 logits before the",
            "softmax, since an untrained softmax is ~1/1000 everywhere),",
            "float32 and float16 weights, LiteRT's GPU accelerator",
            f"(`{num[0]['backend'] if num else '?'}`: WebGPU on Mesa llvmpipe, Vulkan) against the CPU",
            "accelerator, on the same random inputs in −1..1. GPU kernels may compute in float16.",
            "",
            *ntable,
            "",
            "Command:",
            "",
            "```",
            cmd,
            "```",
            "",
            "Machine (`lscpu`, `nproc`); shared with other jobs:",
            "",
            "```",
            base._machine(),
            "```",
            "",
        ]
    )


def write_section(text: str) -> None:
    old = base.RESULTS.read_text()
    start = old.find(HEADING)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(HEADING))
        new = old[:start] + text.rstrip("\n") + "\n" + (old[nxt:] if nxt >= 0 else "")
    base.RESULTS.write_text(new.rstrip("\n") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--tiny-runs", type=int, default=3000, help="measured runs on the ~7 µs digits CNN")
    ap.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS)
    )
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-gpu", action="store_true", help="skip the GPU numerics")
    ap.add_argument(
        "--timing-log",
        default=None,
        help="rebuild the timing table from the round lines this script printed to stderr (no re-timing)",
    )
    ap.add_argument("--write", action="store_true", help=f"write the results to {base.RESULTS}")
    args = ap.parse_args()
    t0 = time.perf_counter()
    paths = {p.name: p for p in base.build_models()}
    if args.timing_log:
        rows = rows_from_log(Path(args.timing_log).read_text())
    else:
        rows = [
            compare(
                paths[name],
                int(n),
                args.tiny_runs if name.startswith("digits") else args.runs,
                args.warmup,
                args.rounds,
            )
            for name in args.models.split(",")
            for n in args.threads.split(",")
        ]
    num = [] if args.no_gpu else [numerics(static_mobilenet(False)), numerics(static_mobilenet(True))]
    text = markdown(rows, num, args, time.perf_counter() - t0)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
