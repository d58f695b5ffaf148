"""The default demo (``make demo``): train a digits CNN, then run the whole liteship pipeline on it.

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

    from liteship.cli.pipeline import run_example

    work = HERE / "work"
    return run_example(
        HERE / "liteship.yaml",
        model=work / "digits.keras",
        prepare=lambda: prepare(work),
        key=work / "keys" / "liteship.key",
    )


if __name__ == "__main__":
    sys.exit(main())
