"""The default demo (``make demo``): train a MobileNetV2, then run the whole liteship pipeline on it.

    python examples/digits/run.py

Trains on scikit-learn's bundled digits (nothing downloaded), creates a signing key if there is none,
then converts with every recipe, validates, benchmarks, selects, writes metadata, packages and signs.
Prints the comparison table and where report.html is.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> int:
    from prepare import prepare

    from liteship.cli._common import quiet_tensorflow
    from liteship.cli.pipeline import render_summary
    from liteship.errors import GateFailed, LiteshipError
    from liteship.package import generate_keypair
    from liteship.pipeline import run_pipeline

    quiet_tensorflow()
    work = HERE / "work"
    if not (work / "mobilenet_v2.keras").exists():
        prepare(work)
    key = work / "keys" / "liteship.key"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        generate_keypair(key)
        print(f"created a signing key pair: {key} (+ .pub)")
    try:
        report = run_pipeline(HERE / "liteship.yaml")
    except GateFailed as e:
        if e.report is not None:
            render_summary(e.report)
        print(f"error: {e}", file=sys.stderr)
        return 3
    except LiteshipError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    render_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
