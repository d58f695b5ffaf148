"""Fleet bench jobs end to end: the real server on loopback, two real agent processes, the real CLI.

A job runs on both agents and their figures arrive; selection on device figures changes the choice
when a variant is slower on the "device" (a test-only runner adds a delay, LITESHIP_TEST_BENCH_DELAY_MS);
a device that never answers times out into the flagged workstation fallback; device tokens cannot
queue or read others' results; a tampered or unsigned job is refused, reported, never run; a SIGKILL
mid-job leaves the current model serving and the job reported as failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from agent_e2e_conftest import ADMIN, agent_cmd, wait_for
from agent_test_helpers import build

from liteship.agent.client import DeviceClient
from liteship.agent.clock import Clock
from liteship.agent.jobs import TEST_DELAY_ENV, BenchJobs, LiveGate
from liteship.agent.store import Store
from liteship.agent.updater import Updater

MODEL = "benchm"
FAST_BENCH = ("--runs", "20", "--warmup", "2", "--min-seconds", "0.2")


def enroll(fleet, keys, state: Path, device_id: str, model_id: str) -> Path:
    """A device enrolled with the agent's own enroll (the CLI's is covered by tests/e2e/agent)."""
    from agent_e2e_conftest import ENROLL

    from liteship.agent.service import enroll as agent_enroll

    agent_enroll(
        state,
        server=fleet.url,
        enrollment_token=ENROLL,
        device_id=device_id,
        key=keys.public_path,
        model_id=model_id,
    )
    return state


def admin_env(fleet) -> dict[str, str]:
    return {"LITESHIP_SERVER": fleet.url, "LITESHIP_TOKEN": ADMIN}


def token_of(state: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {json.loads((state / 'device.json').read_text())['token']}"}


def start(state: Path, frames: Path, sink: Path, delay: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if delay:
        env[TEST_DELAY_ENV] = delay
    return subprocess.Popen(
        agent_cmd(state, frames, "--sink", f"file:{sink}"),
        stdout=subprocess.DEVNULL,
        stderr=open(state / "agent.log", "ab"),
        env=env,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def lines(sink: Path) -> int:
    return len(sink.read_text().splitlines()) if sink.exists() else 0


@pytest.fixture(scope="module")
def variants(tflite_float, tflite_int8, tmp_path_factory):
    """Two real variants, a file LiteRT cannot load, and a report.json with their workstation p50s."""
    from liteship.bench import benchmark

    d = tmp_path_factory.mktemp("variants")
    paths = {"float32": d / "float32.tflite", "int8": d / "int8.tflite"}
    paths["float32"].write_bytes(tflite_float.read_bytes())
    paths["int8"].write_bytes(tflite_int8.read_bytes())
    broken = d / "broken.tflite"
    broken.write_bytes(b"TFL3" + os.urandom(2000))  # not a flatbuffer model
    report = {"model_id": MODEL, "objective": "latency", "variants": [], "gates": {"max_accuracy_drop": 1.0}}
    for recipe, p in paths.items():
        e = benchmark([p], threads=(1,), runs=50, warmup=5, min_seconds=0.3, progress=False).entries[0]
        report["variants"].append(
            {
                "recipe": recipe,
                "path": str(p),
                "ok": True,
                "size_bytes": p.stat().st_size,
                "p50_ms": e.latency.p50_ms,
                "accuracy_drop": 0.0,
                "agreement_top1": 1.0,
                "validation_passed": True,
                "gates_passed": True,
            }
        )
    fastest = min(report["variants"], key=lambda v: v["p50_ms"])["recipe"]
    report["chosen"] = fastest
    return paths, broken, report, fastest


@pytest.fixture(scope="module")
def two_agents(fleet, keys, golden, tflite_float, digit_pngs, variants, tmp_path_factory):
    """Two enrolled agents running model 1.0.0; on both, the workstation's fastest variant is 8 ms slower."""
    out = tmp_path_factory.mktemp("pkg")
    fleet.publish(
        build(tflite_float.read_bytes(), out, "1.0.0", keys.private_path, golden, model_id=MODEL), "stable"
    )
    base = tmp_path_factory.mktemp("agents")
    _, _, _, fastest = variants
    agents = {}
    for dev in ("bench-a", "bench-b"):
        state = enroll(fleet, keys, base / dev, dev, MODEL)
        sink = base / f"{dev}.jsonl"
        agents[dev] = (state, sink, start(state, digit_pngs, sink, delay=f"{fastest}.tflite=8"))
    for state, sink, _ in agents.values():
        wait_for(lambda s=state, k=sink: Store(s).current_version() == "1.0.0" and lines(k) > 0, timeout=90)
    yield agents
    for _, _, proc in agents.values():
        stop(proc)


def test_job_on_two_agents_and_selection_on_device_figures(fleet, variants, two_agents, cli, tmp_path):
    paths, broken, report, fastest = variants
    flex = (
        Path(__file__).resolve().parents[2]
        / "data"
        / "third_party"
        / "whitespace_tokenizer_flex_delegate.tflite"
    )
    files = [str(paths["float32"]), str(paths["int8"]), str(broken), str(flex)]
    queued_at = time.monotonic()
    r = cli(
        "fleet",
        "bench",
        *files,
        "--device",
        "bench-a",
        "--device",
        "bench-b",
        *FAST_BENCH,
        "--json",
        env=admin_env(fleet),
    )
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["tuf"] == "signed" and {t["device_id"] for t in job["tasks"]} == {"bench-a", "bench-b"}
    r = cli("fleet", "bench", "results", job["id"], "--wait", "120", "--json", env=admin_env(fleet))
    assert r.returncode == 0, r.stderr
    print(f"queue → results for 2 agents: {time.monotonic() - queued_at:.1f} s")
    done = json.loads(r.stdout)
    assert [t["state"] for t in done["tasks"]] == ["done", "done"], done
    for t in done["tasks"]:
        by_name = {x["name"]: x for x in t["results"]}
        for name in ("float32.tflite", "int8.tflite"):
            fig = by_name[name]
            assert fig["ok"] and 0 < fig["p50_ms"] <= fig["p95_ms"] <= fig["p99_ms"], fig
            assert fig["init_ms"] > 0 and fig["runs"] >= 20 and fig["threads"] == 1
        assert by_name[f"{fastest}.tflite"]["p50_ms"] > 8.0  # the injected delay is measured
        assert not by_name["broken.tflite"]["ok"] and by_name["broken.tflite"]["error"]  # per-variant errors
        flex_error = by_name["whitespace_tokenizer_flex_delegate.tflite"]["error"]
        assert "Select TensorFlow op" in flex_error, flex_error  # ops the device's LiteRT does not have
        assert t["profile"]["machine"] and t["profile"]["cores"] >= 1
        assert t["mode"]["mode"] == "between-frames" and t["mode"]["duty_cycle"] == 0.5
    for state, _, proc in two_agents.values():  # the live model was never replaced, files are gone
        assert proc.poll() is None and Store(state).current_version() == "1.0.0"
        assert (
            not list((state / "bench" / "files").glob("*/*"))
            if (state / "bench" / "files").exists()
            else True
        )
    # human-readable results
    r = cli("fleet", "bench", "results", job["id"], env=admin_env(fleet))
    assert r.returncode == 0 and "bench-a" in r.stdout and "float32.tflite" in r.stdout, r.stderr

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text(json.dumps(report))
    (out / "report.html").write_text("<html><body><h1>report</h1></body></html>")
    r = cli(
        "pipeline",
        "select",
        str(out / "report.json"),
        "--job",
        job["id"],
        "--timeout",
        "5",
        "--per-group",
        "--json",
        env=admin_env(fleet),
    )
    assert r.returncode == 0, r.stderr
    sel = json.loads(r.stdout)
    other = "int8" if fastest == "float32" else "float32"
    assert sel["workstation_chosen"] == fastest and sel["chosen"] == other and not sel["fallback"], sel
    saved = json.loads((out / "report.json").read_text())
    assert saved["device_selection"]["chosen"] == other and saved["chosen"] == fastest
    rows = {v["recipe"]: v for v in saved["device_selection"]["variants"]}
    assert rows[fastest]["device_p50_ms"] > rows[fastest]["workstation_p50_ms"]
    assert set(rows[fastest]["devices"]) == {"bench-a", "bench-b"}
    html = (out / "report.html").read_text()
    assert 'id="device-latency"' in html and "workstation p50 ms" in html
    # one variant per hardware group is valid: both agents share this machine's group
    assert (
        len(sel["groups"]) == 1
        and sel["groups"][0]["chosen"] == other
        and len(sel["groups"][0]["devices"]) == 2
    )


def test_pipeline_stage_waits_for_devices_or_falls_back(fleet, variants, two_agents, monkeypatch):
    """``bench: devices: [...]`` in liteship.yaml: the pipeline's device stage, against the real agents."""
    from liteship.pipeline.config import BenchConfig
    from liteship.pipeline.device_select import select_in_pipeline

    _, _, report, fastest = variants
    bench = BenchConfig(
        devices=["bench-a", "bench-b"], runs=20, warmup=2, min_seconds=0.2, device_timeout_s=120
    )
    monkeypatch.setenv("LITESHIP_SERVER", fleet.url)
    monkeypatch.setenv("LITESHIP_TOKEN", ADMIN)
    logged: list[str] = []
    sel = select_in_pipeline(report, bench, logged.append)
    assert not sel.fallback and sel.chosen != fastest and len(sel.answered) == 2, sel
    assert any("waiting up to 120 s" in m for m in logged)
    monkeypatch.setenv("LITESHIP_SERVER", "http://127.0.0.1:9")  # nothing listens: flagged fallback
    sel = select_in_pipeline(report, bench, logged.append)
    assert sel.fallback and sel.chosen == fastest and "cannot reach the fleet server" in sel.message


def test_silent_device_times_out_into_flagged_workstation_fallback(fleet, variants, keys, cli, tmp_path):
    paths, _, report, fastest = variants
    enroll(fleet, keys, tmp_path / "silent", "bench-silent", MODEL)  # never runs an agent
    (tmp_path / "report.json").write_text(json.dumps(report))
    started = time.monotonic()
    r = cli(
        "pipeline",
        "select",
        str(tmp_path / "report.json"),
        "--device",
        "bench-silent",
        "--timeout",
        "2",
        env=admin_env(fleet),
    )
    assert r.returncode == 0, r.stderr
    assert 2 <= time.monotonic() - started < 60
    text = " ".join(r.stdout.split())
    assert "fallback" in text and "timed out after 2 s waiting for bench-silent" in text, r.stdout
    sel = json.loads((tmp_path / "report.json").read_text())["device_selection"]
    assert sel["fallback"] and sel["basis"] == "workstation (fallback)" and sel["chosen"] == fastest
    assert sel["missing"] == {"bench-silent": "queued: no answer"}


def test_device_tokens_cannot_queue_or_read_others(fleet, variants, two_agents):
    paths, _, _, _ = variants
    a, b = (token_of(two_agents[d][0]) for d in ("bench-a", "bench-b"))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    up = httpx.post(f"{fleet.url}/api/v1/bench/variants", content=paths["int8"].read_bytes(), headers=admin)
    assert up.status_code == 201
    body = {"variants": [{"name": "int8.tflite", "sha256": up.json()["sha256"]}], "devices": ["bench-a"]}
    job = httpx.post(f"{fleet.url}/api/v1/bench/jobs", json=body, headers=admin, timeout=30).json()
    cases = [
        ("POST", "/api/v1/bench/variants", {"content": b"x"}),
        ("POST", "/api/v1/bench/jobs", {"json": body}),
        ("GET", "/api/v1/bench/jobs", {}),
        ("GET", f"/api/v1/bench/jobs/{job['id']}", {}),
        ("GET", "/api/v1/devices/bench-a/bench", {}),
        ("POST", f"/api/v1/devices/bench-a/bench/{job['id']}", {"json": {"state": "done"}}),
    ]
    for method, path, kw in cases:
        r = httpx.request(method, fleet.url + path, headers=b, timeout=30, **kw)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert httpx.request(method, fleet.url + path, timeout=30, **kw).status_code == 401
    assert httpx.get(f"{fleet.url}/api/v1/devices/bench-a/bench", headers=a).status_code == 200
    assert httpx.get(f"{fleet.url}/api/v1/bench/jobs/{job['id']}", headers=admin).status_code == 200


def test_tampered_and_unsigned_jobs_are_refused_and_reported(fleet, variants, two_agents, keys, tmp_path):
    paths, _, _, _ = variants
    admin = {"Authorization": f"Bearer {ADMIN}"}
    # tampered: the stored bytes differ from the signed TUF target (a compromised mirror or store)
    data = paths["float32"].read_bytes() + os.urandom(64)  # unique bytes, not shared with another job
    sha = httpx.post(f"{fleet.url}/api/v1/bench/variants", content=data, headers=admin).json()["sha256"]
    body = {"variants": [{"name": "t.tflite", "sha256": sha}], "devices": ["bench-a"], "runs": 5}
    job = httpx.post(f"{fleet.url}/api/v1/bench/jobs", json=body, headers=admin, timeout=30).json()
    blob = fleet.data_dir / "artifacts" / sha[:2] / sha
    assert blob.is_file()
    blob.chmod(0o644)
    blob.write_bytes(data[:-64] + os.urandom(64))
    task = wait_for(lambda: _final(fleet, job["id"], "bench-a"), timeout=60)
    assert task["state"] == "refused" and "tampered" in task["error"] and not task["results"], task

    # unsigned: an offer naming a target the fleet never signed, run by a device's own agent code
    state = enroll(fleet, keys, tmp_path / "u", "bench-u", MODEL)
    job = httpx.post(
        f"{fleet.url}/api/v1/bench/jobs", json={**body, "devices": ["bench-u"]}, headers=admin, timeout=30
    ).json()
    dev = json.loads((state / "device.json").read_text())
    store = Store(state, keys.public_path)
    updater = Updater(store, DeviceClient(fleet.url, "bench-u", dev["token"]), Clock(state / "clock.json"))
    offer = {
        "job_id": job["id"],
        "runs": 5,
        "warmup": 1,
        "min_seconds": 0.0,
        "variants": [
            {
                "name": "t.tflite",
                "target_path": f"bench-jobs/{job['id']}/other.tflite",
                "sha256": sha,
                "size": len(data),
            }
        ],
    }
    result = BenchJobs(store, updater, gate=LiveGate()).run(offer)
    assert result["state"] == "refused" and "not a signed TUF target" in result["error"]
    task = _final(fleet, job["id"], "bench-u")
    assert task["state"] == "refused" and "unsigned job" in task["error"]
    assert (
        not (state / "bench" / "files" / job["id"]).exists() and not (state / "bench" / "job.json").exists()
    )


def _final(fleet, job_id: str, device: str) -> dict | None:
    job = httpx.get(
        f"{fleet.url}/api/v1/bench/jobs/{job_id}", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    task = next(t for t in job["tasks"] if t["device_id"] == device)
    return task if task["state"] in ("done", "failed", "refused") else None


def test_sigkill_mid_job_leaves_the_model_serving(fleet, variants, keys, golden, digit_pngs, tmp_path):
    paths, _, _, _ = variants
    state = enroll(fleet, keys, tmp_path / "k", "bench-kill", MODEL)
    sink = tmp_path / "kill.jsonl"
    proc = start(state, digit_pngs, sink, delay="float32.tflite=100")  # ≥ 10 s of bench: time to kill it
    try:
        wait_for(lambda: Store(state).current_version() == "1.0.0" and lines(sink) > 0, timeout=90)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        sha = httpx.post(
            f"{fleet.url}/api/v1/bench/variants", content=paths["float32"].read_bytes(), headers=admin
        ).json()["sha256"]
        body = {
            "variants": [{"name": "float32.tflite", "sha256": sha}],
            "devices": ["bench-kill"],
            "runs": 100,
        }
        job = httpx.post(f"{fleet.url}/api/v1/bench/jobs", json=body, headers=admin, timeout=30).json()
        journal = state / "bench" / "job.json"
        wait_for(
            lambda: journal.exists() and json.loads(journal.read_text())["state"] == "running", timeout=60
        )
        wait_for(lambda: any((state / "bench" / "files").glob("*/*.tflite")), timeout=30)
        proc.kill()
        proc.wait()
        assert Store(state).current_version() == "1.0.0"
        served = lines(sink)
        proc = start(state, digit_pngs, sink)
        task = wait_for(lambda: _final(fleet, job["id"], "bench-kill"), timeout=60)
        assert task["state"] == "failed" and "interrupted" in task["error"], task
        wait_for(lambda: lines(sink) > served + 20, timeout=60)  # the current model serves again
        assert Store(state).current_version() == "1.0.0" and Store(state).previous_version() is None
        assert not list((state / "bench" / "files").glob("*"))  # deleted at start-up, before any report
        wait_for(lambda: not journal.exists(), timeout=30)  # gone once the server acknowledged the report
    finally:
        stop(proc)
