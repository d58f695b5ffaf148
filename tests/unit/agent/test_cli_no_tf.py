"""The real console script, and the agent running with TensorFlow unimportable."""

from __future__ import annotations

import json


def test_agent_runs_without_tensorflow(no_tf_python, packages, keys, digit_pngs, tmp_path):
    code = f"""
        import json, sys
        from pathlib import Path
        from liteship.agent.service import AgentConfig, install_package, run_agent
        install_package({str(tmp_path / "s")!r}, {str(packages["1.0.0"])!r}, key={keys.public_path!r})
        n = run_agent(AgentConfig(state_dir=Path({str(tmp_path / "s")!r}), source="images:{digit_pngs}",
                                  sink="file:{tmp_path / "out.jsonl"}", max_frames=5, num_threads=1))
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        import liteship.agent.updater, liteship.agent.client, liteship.cli.agent  # the rest of the agent
        assert "tensorflow" not in sys.modules
        import threading  # device jobs too: a profile and a validation run of the installed model
        import numpy as np
        from liteship.agent.jobs import LiveGate, Pacer
        from liteship.agent.jobs_profile import run_profile
        from liteship.agent.jobs_validate import run_validation
        model = next(Path({str(tmp_path / "s")!r}).glob("current/*.tflite"))
        pacer = Pacer(LiveGate(), 1.0, threading.Event())
        assert run_profile("m", model, pacer=pacer, num_threads=1, runs=2)["ok"]
        row, body = run_validation("m", model, np.zeros((2, 8, 8, 1), np.float32), pacer=pacer,
                                   accelerator=None, num_threads=1)
        assert row["ok"] and body["samples"] == 2, row
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        print(json.dumps({{"frames": n}}))
    """
    r = no_tf_python(code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"frames": 5}
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 5


def test_cli_install_run_status(cli, packages, keys, digit_pngs, tmp_path):
    state = str(tmp_path / "state")
    r = cli(
        "agent", "install", "--state-dir", state, "--key", keys.public_path, str(packages["1.0.0"]), "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["installed"] == "1.0.0"
    r = cli("agent", "install", "--state-dir", state, "--key", keys.public_path, str(packages["nan"]))
    assert r.returncode == 1 and "smoke test" in r.stderr and "Traceback" not in r.stderr
    # `run` is the default command
    r = cli(
        "agent",
        "--state-dir",
        state,
        "--key",
        keys.public_path,
        "--source",
        f"images:{digit_pngs}",
        "--max-frames",
        "3",
        "--threads",
        "1",
    )
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 3 and lines[0]["version"] == "1.0.0"
    logs = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{")]
    assert any(entry["msg"] == "agent stopped" for entry in logs)
    r = cli("agent", "status", "--state-dir", state, "--json")
    st = json.loads(r.stdout)
    assert (st["current"], st["previous"]) == ("1.0.0", None) and "1.3.0" in st["failed"]
    assert st["last_decision"]["action"] == "refused" and st["spooled_windows"] == 1
    r = cli("agent", "status", "--state-dir", state)
    assert "current   1.0.0" in r.stdout
    r = cli("agent", "--state-dir", state, "--key", keys.public_path, "--source", "webcam")
    assert r.returncode == 2 and "unknown source" in r.stderr
