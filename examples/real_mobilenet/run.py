"""Google's float MobileNetV1 0.25 through the pipeline on real photos, gated on its QAT twin's agreement.

    python examples/real_mobilenet/run.py

Prepares the photo crops (``prepare.py``), measures the quantization-aware-trained uint8 twin's top-1
agreement with the float model on the validation crops, writes ``work/liteship.yaml`` with that figure as
``gates.min_agreement``, and runs ``liteship pipeline run`` on it: the selected variant must be int8 with
every conv integer and agree with float at least as often as Google's QAT twin does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> int:
    from prepare import prepare

    work = HERE / "work"
    facts = prepare(work)
    print(
        f"{facts['calibration']} calibration crops, {facts['validation']} validation crops; "
        f"QAT twin agreement with float: {100 * facts['twin_agreement']:.1f} %"
    )
    cfg = yaml.safe_load((HERE / "liteship.yaml").read_text())
    cfg["gates"]["min_agreement"] = round(float(facts["twin_agreement"]), 4)
    cfg["source"] = str((HERE / cfg["source"]).resolve())
    for key in ("calibration", "validation"):
        cfg[key]["data"] = str((HERE / cfg[key]["data"]).resolve())
    cfg["output"] = str(HERE / cfg["output"])
    config = work / "liteship.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return subprocess.call([sys.executable, "-m", "liteship.cli.main", "pipeline", "run", str(config)])


if __name__ == "__main__":
    sys.exit(main())
