"""SIGKILL a real process at random moments of the install step (verify, extract, smoke-test, swap),
≥ 50 trials: after start-up recovery the agent always has a verified model, old or new, never partial,
and the update is either finished (health window open) or abandoned and can be redone."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from agent_test_helpers import slot_ok

from liteship.agent.recovery import recover
from liteship.agent.store import Store

TRIALS = 100
WORKER = textwrap.dedent("""
    import sys, time
    from liteship.agent.store import Store
    from liteship.agent.recovery import recover
    store = Store(sys.argv[1], sys.argv[2])
    recover(store)
    print("ready", flush=True)
    sys.stdin.readline()
    t = time.perf_counter()
    store.install(sys.argv[3], num_threads=1)
    print("done", time.perf_counter() - t, flush=True)
""")


def spawn(state, key, package):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(state), key, str(package)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sigkill_during_install_always_leaves_a_verified_model(tmp_path, keys, packages):
    template = tmp_path / "template"
    base = Store(template, keys.public_path)
    base.install(packages["1.0.0"])
    base.commit()
    states = [tmp_path / f"t{i}" for i in range(TRIALS + 1)]
    for s in states:
        shutil.copytree(template, s, symlinks=True)
    # calibrate: how long does the install step take here?
    w = spawn(states[0], keys.public_path, packages["1.1.0"])
    assert w.stdout.readline().strip() == "ready"
    w.stdin.write("go\n")
    w.stdin.flush()
    duration = float(w.stdout.readline().split()[1])
    w.wait(timeout=30)
    rng = random.Random(1234)
    outcomes = {"1.0.0": 0, "1.1.0": 0}
    nxt = spawn(states[1], keys.public_path, packages["1.1.0"])
    started = time.monotonic()
    for i in range(1, TRIALS + 1):
        w, nxt = nxt, (spawn(states[i + 1], keys.public_path, packages["1.1.0"]) if i < TRIALS else None)
        assert w.stdout.readline().strip() == "ready"
        w.stdin.write("go\n")
        w.stdin.flush()
        # half the kills anywhere in the step, half around its end (the swap), where the window is short
        time.sleep(rng.uniform(0.0, 1.2 * duration) if i % 2 else rng.uniform(0.8 * duration, 1.1 * duration))
        w.send_signal(signal.SIGKILL)
        w.wait(timeout=30)
        store = Store(states[i], keys.public_path)
        recover(store)
        version = slot_ok(store)
        assert version in outcomes, f"trial {i}: current is {version}"
        outcomes[version] += 1
        leftovers = [p.name for p in store.incoming.iterdir()] + [p.name for p in store.root.glob(".*tmp*")]
        assert leftovers == [], f"trial {i}: {leftovers}"
        if version == "1.1.0":  # finished: the fallback is kept and the health window is open
            assert store.previous_version() == "1.0.0" and store.state()["pending"]["version"] == "1.1.0"
        else:  # abandoned cleanly: nothing half-done stays, and the update can be redone
            assert sorted(p.name for p in store.versions.iterdir()) == ["1.0.0"]
            store.install(packages["1.1.0"], num_threads=1)
            assert slot_ok(store) == "1.1.0"
    elapsed = time.monotonic() - started
    print(f"\n{TRIALS} SIGKILL trials in {elapsed:.1f} s (install step {duration * 1000:.1f} ms): {outcomes}")
    assert outcomes["1.0.0"] > 0 and outcomes["1.1.0"] > 0  # kills landed both before and after the swap
