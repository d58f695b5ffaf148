"""Helpers of the device-job end-to-end tests (loaded by this folder's conftest as ``jobs_e2e_helpers``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
from agent_e2e_conftest import ADMIN, ENROLL, agent_cmd

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def enroll(fleet, keys, state: Path, device_id: str, model_id: str) -> Path:
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


def start(state: Path, frames: Path, sink: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A real agent process (poll interval 0.3 s) with extra environment ``env`` (test hooks)."""
    return subprocess.Popen(
        agent_cmd(state, frames, "--sink", f"file:{sink}"),
        stdout=subprocess.DEVNULL,
        stderr=open(state / "agent.log", "ab"),  # noqa: SIM115 - the child owns it
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
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


def job(fleet, job_id: str) -> dict:
    return httpx.get(f"{fleet.url}/api/v1/bench/jobs/{job_id}", headers=ADMIN_HEADERS, timeout=30).json()


def final_tasks(fleet, job_id: str) -> list[dict] | None:
    """The job's tasks once none is queued or running, else None."""
    tasks = job(fleet, job_id)["tasks"]
    return tasks if all(t["state"] in ("done", "failed", "refused") for t in tasks) else None


def journal_state(state: Path) -> str | None:
    try:
        return json.loads((state / "bench" / "job.json").read_text()).get("state")
    except (OSError, ValueError):
        return None
