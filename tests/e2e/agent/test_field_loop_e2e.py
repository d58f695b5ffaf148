"""The field loop end to end (issue 25, "Done when"): a real server, a real agent on a shifted domain
(brightness/contrast-shifted digits), drift alerts, capture switched on from the server, samples arrive
within the quota, are exported, and a pipeline run calibrated on them gives an int8 variant more
accurate on the shifted data than the current release.

The domain: raw pixels are the digits × 8 (0..128), declared ``mean 0, std 128``; the field's camera
sees them with contrast × 1.8 and brightness + 24 (0..254). The current release is int8 calibrated on
the original domain: its input and activation ranges clip the brighter field. Figures are printed
(run with ``-s``) and written to ``field-loop.json`` in the test's folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from agent_e2e_conftest import ADMIN, start_agent, wait_for

REPO = Path(__file__).resolve().parents[3]
CONTRAST, BRIGHTNESS = 1.8, 24.0
PER_HOUR = 200


def pipeline_yaml(path: Path, *, version: str, calibration: str, validation: str, key: str, out: str) -> Path:
    path.write_text(
        f"""source: work/digits.keras
model_id: fielddigits
version: {version}
output: {out}
preprocessing: {{mean: 0, std: 128}}
calibration: {{data: {calibration}, samples: 200}}
validation: {{data: {validation}}}
recipes: [int8]
bench: {{threads: [1], runs: 5, min_seconds: 0}}
gates: {{max_accuracy_drop: 50}}
auto_mixed_precision: {{enabled: false}}
metadata: {{labels: work/labels.txt}}
package: {{key: {key}}}
"""
    )
    return path


def liteship(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "liteship"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


def accuracy_of(model: Path, data: Path, cwd: Path) -> float:
    r = liteship(
        "validate", str(model), "--reference", "work/digits.keras", "--data", str(data), "--json", cwd=cwd
    )
    assert r.returncode in (0, 3), r.stderr
    return float(json.loads(r.stdout)["agreement"][0]["candidate_accuracy"])


def shifted(x: np.ndarray) -> np.ndarray:
    return np.clip(CONTRAST * x + BRIGHTNESS, 0, 255)


@pytest.fixture(scope="module")
def world(tmp_path_factory, keys):
    """The digits CNN trained on the original domain, its data, and the release 1.0.0 (pipeline)."""
    sys.path.insert(0, str(REPO / "examples" / "digits"))
    from prepare import prepare  # the example's trainer: 8x8 digits, raw 0..16

    root = tmp_path_factory.mktemp("field-loop")
    work = prepare(root / "work", epochs=20)
    calib = np.load(work / "calib.npy") * 8.0  # raw 0..128
    val = np.load(work / "val.npz")
    x, y = val["x"] * 8.0, val["y"]
    np.save(work / "calib.npy", calib.astype(np.float32))
    np.savez(work / "val.npz", x=x.astype(np.float32), y=y)
    frames_x, frames_y = x[:250], y[:250]  # what the device sees (shifted), never labeled
    np.savez(work / "field_val.npz", x=shifted(np.round(x[250:])).astype(np.float32), y=y[250:])  # held out
    frames = root / "frames"
    frames.mkdir()
    from PIL import Image

    for i, img in enumerate(shifted(frames_x)):
        Image.fromarray(np.round(img[..., 0]).astype(np.uint8), "L").save(frames / f"{i:04d}.png")
    cfg = pipeline_yaml(
        root / "release.yaml",
        version="1.0.0",
        calibration="work/calib.npy",
        validation="work/val.npz",
        key=str(keys.private_path),
        out="release",
    )
    r = liteship("pipeline", "run", str(cfg), cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    return {"root": root, "frames": frames, "frames_y": frames_y, "release": root / "release"}


def test_drift_capture_export_recalibrate(world, fleet, enrolled, cli):
    root, conn = world["root"], ("--server", fleet.url, "--token", ADMIN)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    fleet.publish(world["release"] / "fielddigits-1.0.0.lsp", channel="stable")
    state = enrolled("field-1", "fielddigits")
    agent = start_agent(state, world["frames"], "--window", "1", "--max-fps", "300")
    try:
        # 1. drift alerts on the shifted field
        def alert():
            series = httpx.get(
                f"{fleet.url}/api/v1/drift",
                params={"model_id": "fielddigits", "period_s": 3600},
                headers=admin,
            ).json()
            s = next((s for s in series if s["version"] == "1.0.0"), None)
            return s if s and s["latest_level"] == "alert" else None

        drift = wait_for(alert, timeout=180, every=1.0)
        psi = drift["points"][-1]["psi"]
        r = cli("fleet", "drift", "fielddigits", *conn)
        assert r.returncode == 0 and "passed the alert band" in r.stdout, r.stdout + r.stderr
        assert "liteship fleet capture on fielddigits --trigger random@0.1" in r.stdout
        assert not list((state / "capture" / "samples").glob("*.npz"))  # nothing captured before

        # 2. capture switched on from the server (signed policy); samples arrive within the quota
        r = cli(
            "fleet",
            "capture",
            "on",
            "fielddigits",
            "--trigger",
            "random@0.5",
            "--per-hour",
            str(PER_HOUR),
            "--per-day",
            "1000",
            *conn,
        )
        assert r.returncode == 0, r.stderr

        def received() -> int:
            return len(
                httpx.get(
                    f"{fleet.url}/api/v1/samples",
                    params={"model_id": "fielddigits", "limit": 1000},
                    headers=admin,
                ).json()
            )

        wait_for(lambda: received() >= PER_HOUR, timeout=180, every=1.0)
        time.sleep(3.0)  # hundreds more frames and several check-ins later: still the quota
        assert received() == PER_HOUR
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
    assert not list((state / "capture" / "samples").glob("*.npz"))  # uploaded, then deleted on the device

    # 3. export, recalibrate with the pipeline, compare on held-out shifted data
    r = cli(
        "fleet",
        "samples",
        "export",
        "fielddigits",
        "--since",
        "1h",
        "-o",
        str(root / "field.npz"),
        "--json",
        *conn,
    )
    assert r.returncode == 0, r.stderr
    exported = json.loads(r.stdout)
    assert exported["samples"] == PER_HOUR and exported["shape"] == [PER_HOUR, 8, 8, 1]
    x = np.load(root / "field.npz")["x"]
    assert x.max() > 200 and x.min() >= 20  # the shifted field, in raw pixels
    cfg = pipeline_yaml(
        root / "field.yaml",
        version="1.1.0",
        calibration="field.npz",
        validation="work/field_val.npz",
        key="unused.key",
        out="field",
    )
    cfg.write_text(cfg.read_text().replace("package: {key: unused.key}\n", ""))
    r = liteship("pipeline", "run", str(cfg), cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((root / "field" / "report.json").read_text())
    new = next(v for v in report["variants"] if v["recipe"] == "int8")
    # the current release and the new variant side by side, on the field and on the original data
    r = liteship(
        "pipeline",
        "compare",
        "field/report.json",
        "--release",
        str(world["release"] / "fielddigits.tflite"),
        "--data",
        "field=work/field_val.npz",
        "--data",
        "original=work/val.npz",
        "--json",
        cwd=root,
    )
    assert r.returncode == 0, r.stderr
    cells = json.loads(r.stdout)["cells"]
    current_field, new_field = cells["release"]["field"]["accuracy"], cells["int8"]["field"]["accuracy"]
    assert abs(new_field - float(new["accuracy"])) < 1e-9  # the same figure as the run's own validation
    r = liteship(
        "pipeline",
        "compare",
        "field/report.json",
        "--release",
        str(world["release"] / "fielddigits.tflite"),
        "--data",
        "field=work/field_val.npz",
        "--data",
        "original=work/val.npz",
        cwd=root,
    )
    assert r.returncode == 0 and "field accuracy" in r.stdout and "best int8" in r.stdout, r.stdout
    figures = {
        "psi_at_alert": psi,
        "samples": exported["samples"],
        "shifted_validation_samples": 250,
        "current_release_int8_on_field": current_field,
        "field_calibrated_int8_on_field": new_field,
        "float_on_field": cells["int8"]["field"]["reference_accuracy"],
        "current_release_int8_on_original": cells["release"]["original"]["accuracy"],
        "field_calibrated_int8_on_original": cells["int8"]["original"]["accuracy"],
    }
    (root / "field-loop.json").write_text(json.dumps(figures, indent=2))
    print("\nfield loop figures:", json.dumps(figures, indent=2))
    assert new_field > current_field + 0.03, figures
