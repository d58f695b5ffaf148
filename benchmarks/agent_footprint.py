"""The device agent's footprint: import time and memory (RSS), beside the size of the model it runs.

Each figure comes from fresh processes (median over ``--rounds``) with TensorFlow made unimportable, as
on a device. "import" is every agent module (service, loop, updater with python-tuf and httpx, store,
sources, sinks). "RSS after import" is the resident set right after those imports; "RSS running" is
the peak resident set after loading the model in the agent's loop and running 50 inferences.

    .venv/bin/python benchmarks/agent_footprint.py --rounds 5 --write
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import NO_TF_PRELUDE  # noqa: E402

PROBE = textwrap.dedent("""
    import json, resource, sys, time
    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
    base = rss_mb()
    t = time.perf_counter()
    import liteship.agent.service, liteship.agent.loop, liteship.agent.updater, liteship.agent.sources
    import_s = time.perf_counter() - t
    after_import = rss_mb()
    import numpy as np
    from liteship.agent.loop import LoadedModel
    from liteship.runtime import LiteRTRunner
    r = LiteRTRunner(sys.argv[1], num_threads=1)
    spec = r.input_specs[0]
    x = np.zeros([max(d, 1) for d in spec.shape], np.float32)
    for _ in range(50):
        r.infer({spec.name: x})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"import_s": import_s, "rss_base": base, "rss_import": after_import, "rss_peak": peak,
                      "tf": "tensorflow" in sys.modules}))
""")


def probe(model: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", NO_TF_PRELUDE + PROBE, str(model)],
        capture_output=True,
        text=True,
        check=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(models: list[Path], rounds: int) -> list[dict]:
    rows = []
    for m in models:
        runs = [probe(m) for _ in range(rounds)]
        assert not any(r["tf"] for r in runs), "TensorFlow was imported"
        rows.append(
            {
                "model": m.name,
                "size_mb": m.stat().st_size / 2**20,
                **{
                    k: statistics.median(r[k] for r in runs)
                    for k in ("import_s", "rss_base", "rss_import", "rss_peak")
                },
            }
        )
    return rows


def render(rows: list[dict], rounds: int, seconds: float) -> str:
    lines = [
        "## Device agent footprint",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} in {seconds:.0f} s on this 2-core machine (shared), TensorFlow "
        f"unimportable; medians of {rounds} fresh processes each. Import = all agent modules (service, loop, "
        "updater with python-tuf + httpx, store, sources, sinks); RSS running = peak RSS after loading the "
        "model with LiteRT (1 thread) and 50 inferences.",
        "",
        "| model | model size (MB) | agent import (s) | RSS interpreter (MB) | RSS after import (MB) | RSS running, peak (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['size_mb']:.2f} | {r['import_s']:.2f} | {r['rss_base']:.0f} | "
            f"{r['rss_import']:.0f} | {r['rss_peak']:.0f} |"
        )
    lines += [
        "",
        "Command:",
        "",
        "```",
        f".venv/bin/python benchmarks/agent_footprint.py --rounds {rounds} --write",
        "```",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str, path: Path) -> None:
    """Replace only the "## Device agent footprint" section (or append it)."""
    doc = path.read_text() if path.exists() else "# Benchmark results\n"
    head, sep, rest = doc.partition("## Device agent footprint")
    tail = rest[rest.find("\n## ") + 1 :] if sep and "\n## " in rest else ""
    path.write_text(head.rstrip() + "\n\n" + text + ("\n" + tail if tail else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "models",
        nargs="*",
        type=Path,
        default=sorted((REPO / "tests/data/third_party").glob("mobilenet*.tflite")),
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="Write the section of benchmarks/RESULTS.md.")
    args = ap.parse_args()
    start = time.monotonic()
    rows = measure(args.models, args.rounds)
    text = render(rows, args.rounds, time.monotonic() - start)
    print(text)
    if args.write:
        write_section(text, REPO / "benchmarks" / "RESULTS.md")


if __name__ == "__main__":
    main()
