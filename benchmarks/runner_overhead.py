"""What ``LiteRTRunner.infer`` adds over the raw interpreter calls, on MobileNetV2 int8.

Budget: at most max(5 %, 30 µs) over ``set_tensor`` / ``invoke`` / ``get_tensor`` on the same model.

Three ways to run one inference, interleaved round by round (each round runs every variant in a
rotated order, so drift and neighbours on a shared machine hit all of them alike):

* ``raw interpreter`` — ai-edge-litert's ``Interpreter``: set_tensor(int8), invoke, get_tensor.
* ``Runner raw=True``  — ``LiteRTRunner(raw=True).infer(int8 array)``: the feed check and dispatch.
* ``Runner float I/O`` — ``LiteRTRunner().infer(float32 array)``: also quantizes the 224x224x3 input (by
  LiteRT's QUANTIZE op in the float-input copy the runner runs) and dequantizes the 1000 outputs (work the
  raw loop does not do at all).
* ``quantize() alone`` / ``Quantizer alone`` — the input's quantization without any inference: the
  reference function and the preallocated quantizer ``infer`` uses (their "overhead" columns are
  meaningless: they are far below the raw interpreter).

"paired overhead" is the median over rounds of (the variant's round median - the raw interpreter's in
the same round): a neighbour that slows a whole round cancels out; "within budget" judges it.

Usage:
    .venv/bin/python benchmarks/runner_overhead.py [--threads 1] [--rounds 15] [--runs 20] [--breakdown]

``--breakdown`` adds three rows on the raw interpreter: the Quantizer writing into its input tensor before
each run (how Runner float I/O quantized before it ran a float-input copy), one read of the float input
before each run (what merely touching 602 kB costs the next inference: the interpreter finds its caches
cold), and set_tensor(float32)/invoke/get_tensor on the float-input copy (``liteship.model.float_input``:
Runner float I/O now, without the Runner).

The model (MobileNetV2, weights=None, int8 with int8 I/O, random calibration) is built once with
TensorFlow's converter and cached in benchmarks/.cache/.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
CACHE = Path(__file__).resolve().parent / ".cache"
MODEL = CACHE / "mobilenet_v2_int8_io.tflite"


def build_model() -> Path:
    if MODEL.exists():
        return MODEL
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None)
    rng = np.random.default_rng(0)

    def calibration():
        for _ in range(20):
            yield [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = calibration
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    CACHE.mkdir(parents=True, exist_ok=True)
    MODEL.write_bytes(conv.convert())
    return MODEL


def variants(path: Path, threads: int, breakdown: bool = False):
    from ai_edge_litert.interpreter import Interpreter

    from liteship.runtime import LiteRTRunner

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    i_idx = it.get_input_details()[0]["index"]
    o_idx = it.get_output_details()[0]["index"]
    raw_runner = LiteRTRunner(path, num_threads=threads, raw=True)
    runner = LiteRTRunner(path, num_threads=threads)
    rng = np.random.default_rng(1)
    x_float = rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    spec = runner.input_specs[0]
    from liteship.runtime import quantize

    x_int8 = quantize(x_float, spec.scale, spec.zero_point, np.int8)

    def raw_interpreter():
        it.set_tensor(i_idx, x_int8)
        it.invoke()
        return it.get_tensor(o_idx)

    from liteship.runtime.quant import Quantizer

    quantizer = Quantizer(spec.scale, spec.zero_point, np.int8)
    fns = {
        "raw interpreter": raw_interpreter,
        "Runner raw=True": lambda: raw_runner.infer(x_int8),
        "Runner float I/O": lambda: runner.infer(x_float),
        # the input's quantization alone (no inference): the reference function, and what infer() uses
        "quantize() alone": lambda: quantize(x_float, spec.scale, spec.zero_point, np.int8),
        "Quantizer alone": lambda: quantizer(x_float),
    }
    if breakdown:  # where Runner float I/O's overhead goes, by hand on the raw interpreter

        def quantizer_then_raw():
            view = it.tensor(i_idx)()
            quantizer(x_float, out=view)  # what infer() does: straight into the input tensor
            del view
            it.invoke()
            return it.get_tensor(o_idx)

        def read_input_then_raw():
            np.minimum.reduce(x_float, axis=None)  # touches the 602 kB float input once, nothing else
            return raw_interpreter()

        from liteship.model.float_input import float_input_copy

        copy = float_input_copy(path.read_bytes())
        assert copy is not None, "the model has no quantized input"
        fit = Interpreter(model_content=copy.data, num_threads=threads)
        fit.allocate_tensors()
        f_in, f_out = fit.get_input_details()[0]["index"], fit.get_output_details()[0]["index"]

        def float_copy_raw():
            fit.set_tensor(f_in, x_float)  # what infer() does now: LiteRT's QUANTIZE op in the graph
            fit.invoke()
            return fit.get_tensor(f_out)

        fns["raw + Quantizer into the input tensor"] = quantizer_then_raw
        fns["raw + one read of the float input"] = read_input_then_raw
        fns["raw interpreter on the float-input copy"] = float_copy_raw
    return fns


def measure(fns: dict, rounds: int, runs: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``(samples, per-round medians)`` of every variant, in µs."""
    for fn in fns.values():  # warm-up
        for _ in range(5):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    per_round: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            fn = fns[name]
            this = []
            for _ in range(runs):
                t = time.perf_counter_ns()
                fn()
                this.append((time.perf_counter_ns() - t) / 1e3)
            samples[name] += this
            per_round[name].append(statistics.median(this))
    return samples, per_round


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="also time, on the raw interpreter, the Quantizer into its input tensor and one read of the "
        "float input before each run",
    )
    args = ap.parse_args()
    path = build_model()
    samples, per_round = measure(variants(path, args.threads, args.breakdown), args.rounds, args.runs)
    base = statistics.median(samples["raw interpreter"])
    budget = max(0.05 * base, 30.0)
    print(
        f"MobileNetV2 int8 ({path.name}), {args.threads} thread(s), {args.rounds} rounds x {args.runs} runs, "
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores), Python {sys.version.split()[0]}"
    )
    print(f"budget: max(5 %, 30 µs) = {budget:.1f} µs over the raw interpreter\n")
    print(
        "| variant | median (µs) | p10 (µs) | p90 (µs) | overhead vs raw (µs) | overhead % | paired overhead (µs) "
        "| within budget |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|:---:|")
    raw_rounds = per_round["raw interpreter"]
    for name, s in samples.items():
        q = statistics.quantiles(s, n=10)
        med = statistics.median(s)
        over = med - base
        # each round's median minus the raw interpreter's in the same round, then the median of those:
        # neighbours that slow a whole round (a shared machine) cancel out
        paired = statistics.median(a - b for a, b in zip(per_round[name], raw_rounds, strict=True))
        ok = (
            "—"
            if name == "raw interpreter" or "alone" in name or "raw +" in name
            else ("yes" if paired <= budget else "no")
        )
        print(
            f"| {name} | {med:.1f} | {q[0]:.1f} | {q[-1]:.1f} | {over:+.1f} | {100 * over / base:+.2f} "
            f"| {paired:+.1f} | {ok} |"
        )


if __name__ == "__main__":
    main()
