"""Field capture end to end (issue 25): the real server on loopback, a real agent process, the real CLI.
Capture is off until `fleet capture on`; the agent verifies the policy through TUF, keeps samples
within its quota, uploads them and deletes them; `fleet samples export` gives the pipeline's .npz;
`fleet capture off` stops it at the next check-in."""

from __future__ import annotations

import contextlib
import json
import signal
import time

import httpx
import numpy as np
import pytest
from agent_e2e_conftest import ADMIN, start_agent, wait_for
from agent_test_helpers import build


@pytest.fixture(scope="module")
def pkg(tflite_float, keys, golden, tmp_path_factory):
    return build(
        tflite_float.read_bytes(),
        tmp_path_factory.mktemp("cap-lsp"),
        "1.0.0",
        keys.private_path,
        golden,
        model_id="capdigits",
    )


def samples_on_server(fleet) -> list[dict]:
    r = httpx.get(
        f"{fleet.url}/api/v1/samples",
        params={"model_id": "capdigits", "limit": 1000},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    return r.json()


def log_lines(state) -> list[dict]:
    out = []
    for line in (state / "agent.log").read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def test_capture_is_switched_on_from_the_server_stays_in_quota_uploads_and_deletes(
    fleet, enrolled, pkg, digit_pngs, tmp_path, cli
):
    fleet.publish(pkg, channel="stable")
    state = enrolled("cap-1", "capdigits")
    conn = ("--server", fleet.url, "--token", ADMIN)
    agent = start_agent(state, digit_pngs, "--window", "0.5", "--max-fps", "100")
    try:
        wait_for(lambda: any(e.get("msg") == "model loaded" for e in log_lines(state)), timeout=120)
        time.sleep(1.0)  # a second of inference with capture off (the default): nothing is kept
        assert not list((state / "capture" / "samples").glob("*.npz")) and samples_on_server(fleet) == []
        r = cli(
            "fleet",
            "capture",
            "on",
            "capdigits",
            "--trigger",
            "random@0.5",
            "--per-hour",
            "6",
            "--per-day",
            "100",
            *conn,
        )
        assert r.returncode == 0, r.stderr
        assert "capture on for capdigits: random@0.5; 6/h, 100/day" in r.stdout
        wait_for(lambda: len(samples_on_server(fleet)) >= 6, timeout=60)
        time.sleep(2.0)  # many more frames and check-ins: the device's hourly quota holds
        rows = samples_on_server(fleet)
        assert len(rows) == 6 and {r["trigger"] for r in rows} == {"random"}
        assert all(r["version"] == "1.0.0" and r["device_id"] == "cap-1" for r in rows)
        wait_for(lambda: not list((state / "capture" / "samples").glob("*.npz")), timeout=10)  # deleted
        status = json.loads((state / "capture" / "state.json").read_text())
        assert status["uploaded"] == 6 and status["dropped_quota"] > 0
        r = cli("agent", "status", "--state-dir", str(state))
        assert r.returncode == 0 and "capture   on (random; 6/h, 100/day; policy " in r.stdout, r.stdout
        assert "6 uploaded" in r.stdout
        r = cli("agent", "status", "--state-dir", str(state), "--json")
        cap = json.loads(r.stdout)["capture"]
        assert cap["on"] is True and cap["uploaded"] == 6 and cap["dropped_quota"] > 0
        on = next(e for e in log_lines(state) if e.get("msg") == "capture turned on")
        assert on["per_hour"] == 6 and on["rules"] == ["random"]

        r = cli(
            "fleet",
            "samples",
            "export",
            "capdigits",
            "--since",
            "1h",
            "-o",
            str(tmp_path / "field.npz"),
            "--json",
            *conn,
        )
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        assert summary["samples"] == 6 and summary["y"] is False and summary["shape"] == [6, 8, 8, 1]
        z = np.load(tmp_path / "field.npz")
        from PIL import Image

        pngs = [np.asarray(Image.open(p), np.float32) for p in sorted(digit_pngs.glob("*.png"))]
        for x in z["x"]:  # each exported input is one of the frames, in the raw domain (0..255)
            assert min(float(np.abs(x[..., 0] - p).max()) for p in pngs) < 1e-3

        r = cli("fleet", "capture", "off", "capdigits", *conn)
        assert r.returncode == 0 and "capture off for capdigits" in r.stdout
        wait_for(lambda: any(e.get("msg") == "capture turned off" for e in log_lines(state)), timeout=30)
        assert not (state / "capture" / "policy.json").exists()
        r = cli(
            "fleet", "samples", "purge", "capdigits", "--older-than", "0s", *conn
        )  # server-side retention
        assert r.returncode == 0 and "deleted 6 samples of capdigits" in r.stdout, r.stdout + r.stderr
        assert samples_on_server(fleet) == []
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)


def test_cli_errors_are_one_line(fleet, cli):
    conn = ("--server", fleet.url, "--token", ADMIN)
    r = cli("fleet", "capture", "on", "capdigits", "--trigger", "sometimes", *conn)
    assert r.returncode == 2 and "unknown trigger 'sometimes'" in r.stderr and "Traceback" not in r.stderr
    r = cli("fleet", "samples", "export", "nosuchmodel", "-o", "x.npz", *conn)
    assert (
        r.returncode == 1 and "no field samples of 'nosuchmodel'" in r.stderr and "Traceback" not in r.stderr
    )
    r = cli("fleet", "samples", "export", "capdigits", "--since", "yesterday", "-o", "x.npz", *conn)
    assert r.returncode == 2 and "cannot read --since 'yesterday'" in r.stderr
