"""Accuracy repair on the MobileNetV2 example: what it ships, at what speed, and what the search costs.

Runs ``examples/mobilenet/liteship.yaml`` (prepare it first: ``python examples/mobilenet/prepare.py``)
twice into a scratch folder: as configured (accuracy repair on) and with ``auto_mixed_precision`` off
(the plain pipeline), and prints wall times, the repaired variant, its agreement and its p50 against
plain int8.

    nice python benchmarks/quant_mobilenet.py [--only-repair] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import yaml  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mobilenet"


def _run(amp: bool, out: Path) -> dict:
    from liteship.pipeline import run_pipeline

    cfg = yaml.safe_load((EXAMPLE / "liteship.yaml").read_text())
    cfg["base_dir"] = str(EXAMPLE)
    cfg["output"] = str(out)
    cfg["package"] = {}
    if not amp:
        cfg["auto_mixed_precision"] = {"enabled": False}
    t = time.perf_counter()
    report = run_pipeline(cfg, log=lambda m: print(m, file=sys.stderr), progress=False, raise_on_gate=False)
    seconds = time.perf_counter() - t
    int8 = report.variant("int8")
    mp = report.mixed_precision
    fixed = report.variant(mp.recipe) if mp and mp.recipe else None
    return {
        "seconds": round(seconds, 1),
        "stage_seconds": {k: round(v, 1) for k, v in report.stage_seconds.items()},
        "chosen": report.chosen,
        "int8": {"agreement": int8.agreement_top1, "p50_ms": int8.p50_ms} if int8 else None,
        "repaired": mp.recipe if mp else None,
        "repaired_agreement": fixed.agreement_top1 if fixed else None,
        "repaired_p50_ms": fixed.p50_ms if fixed else None,
        "speed_vs_int8": (int8.p50_ms / fixed.p50_ms) if fixed and int8 and fixed.p50_ms else None,
        "float_layers": [n.split(";")[0] for n in (mp.float_layers if mp else [])],
        "attempts": [a.to_dict() for a in mp.attempts] if mp else [],
        "search": {k: mp.search.get(k) for k in ("label", "probed", "total_ops", "seconds")}
        if mp and mp.search
        else None,
        "rounds": len(mp.search["rounds"]) if mp and mp.search and "rounds" in mp.search else 0,
        "variants": {v.recipe: {"agreement": v.agreement_top1, "p50_ms": v.p50_ms} for v in report.variants},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only-repair", action="store_true", help="skip the plain-pipeline run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (EXAMPLE / "work" / "mobilenet_v2.keras").exists():
        print("run examples/mobilenet/prepare.py first", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="liteship-quant-mobilenet-"))
    result = {"repair": _run(True, work / "repair")}
    if not args.only_repair:
        result["plain"] = _run(False, work / "plain")
        result["overhead"] = result["repair"]["seconds"] / result["plain"]["seconds"]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
