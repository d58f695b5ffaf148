"""A full disk never stops inference (issue 25, item 5): the real loop, with telemetry and field capture
on, in a child process whose every file write past a few bytes the kernel refuses (RLIMIT_FSIZE: EFBIG,
the same failure path as ENOSPC on a full disk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[3] / "src")

CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from liteship.agent.capture import Capture
    from liteship.agent.health import HealthWindow
    from liteship.agent.loop import AgentLoop
    from liteship.agent.sources import ImageFolderSource
    from liteship.agent.store import Store
    from liteship.agent.telemetry import Spool

    state, frames, key = sys.argv[1:4]

    class Memory:
        def __init__(self): self.rows = []
        def write(self, r): self.rows.append(r)
        def close(self): pass

    store = Store(state, key)
    sink = Memory()
    loop = AgentLoop(store, ImageFolderSource(frames, loop=True), sink, Spool(state + "/spool"),
                     health=HealthWindow(store, inferences=10), window_s=0.01, num_threads=1, max_frames=200)
    loop.capture = Capture(state + "/capture")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))  # the disk is full from here on
    frames_done = loop.run()
    loop.capture.close()
    print(json.dumps({"frames": frames_done, "results": len(sink.rows), "capture": loop.capture.status()}))
    """
)


def test_inference_goes_on_when_the_disk_is_full(tmp_path, keys, packages, digit_pngs):
    from liteship.agent.capture import Capture
    from liteship.agent.store import Store

    store = Store(tmp_path / "state", keys.public_path)
    store.install(packages["1.0.0"])
    store.commit()
    policy = {
        "model_id": "digits",
        "rules": [{"trigger": "random"}],
        "per_hour": 3600,
        "per_day": 20000,
        "disk_bytes": 1 << 20,
        "retention_s": 3600,
        "expires": time.time() + 3600,
    }
    Capture(tmp_path / "state" / "capture").set_policy(json.dumps(policy).encode(), sha256="a" * 64)
    p = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "state"), str(digit_pngs), str(keys.public_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["frames"] == 200 and out["results"] == 200  # every frame ran and was delivered
    assert out["capture"]["dropped_error"] > 0 and out["capture"]["pending"] == 0
    assert "telemetry window dropped" in p.stderr
    assert not list((tmp_path / "state" / "spool").glob(".*tmp*"))  # no half-written file left
    assert not list((tmp_path / "state" / "capture" / "samples").iterdir())
