"""SIGKILL a real process at random moments of the install step (verify, extract, smoke-test, swap),
≥ 50 trials: after start-up recovery the agent always has a verified model, old or new, never partial,
and the update is either finished (health window open) or abandoned and can be redone.

The kills are anchored on what the worker is doing, not on wall-clock guesses, so a loaded machine does
not move them: the worker prints each step as it starts (``Store.install``'s ``on_step``) and the test
kills a random time into the step it aims at, or right as the disk shows the swap's intent (it must
come back as 1.1.0), or while the worker holds at the start of extraction (it must come back as 1.0.0).
"""

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
    hold = sys.stdin.readline().split()[1:]  # "go", or "go STEP": stop at STEP's start until killed
    t = time.perf_counter()
    def on_step(step):
        print("step", step, time.perf_counter() - t, flush=True)
        if [step] == hold:
            sys.stdin.readline()
    store.install(sys.argv[3], num_threads=1, on_step=on_step)
    print("done", time.perf_counter() - t, flush=True)
""")
STEPS = ("extract", "smoke-test", "swap")


def spawn(state, key, package):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(state), key, str(package)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


# killed once the disk shows the swap's intent: recovery finishes it; killed while held at the start of
# extraction: nothing of 1.1.0 is in place yet
AIM_OUTCOME = {"intent": "1.1.0", "extract": "1.0.0"}


def swap_recorded(state) -> bool:
    """The swap's intent (state.json ``pending`` = 1.1.0) or its result is on disk."""
    import json

    try:
        pending = json.loads((state / "state.json").read_text()).get("pending")
    except (OSError, ValueError):  # between the temp file and its rename there is always one
        return False
    return bool(pending) and pending.get("version") == "1.1.0"


def kill_at(w, i, state, rng, step_s) -> str:
    """Wait for the moment trial ``i`` aims at; returns its name. Trials cycle through: a random time
    after "go" (anywhere in the step), a random time into one step after its line, the swap's intent
    on disk, and the start of extraction (where the worker waits to be killed)."""
    kind = i % 4
    if kind == 0:
        time.sleep(rng.uniform(0.0, 1.2 * sum(step_s.values())))
        return "anywhere"
    target = {1: rng.choice(STEPS), 2: "swap", 3: "extract"}[kind]
    while (line := w.stdout.readline()) and line.split()[:2] != ["step", target]:
        pass
    if kind == 1:
        time.sleep(rng.uniform(0.0, step_s[target]))
        return target + "+"
    if kind == 3:
        return "extract"
    while w.poll() is None and not swap_recorded(state):
        time.sleep(0.0005)
    return "intent"


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
    marks = [w.stdout.readline().split() for _ in range(len(STEPS) + 1)]  # step lines, then "done"
    assert [m[1] for m in marks[:-1]] == list(STEPS) and marks[-1][0] == "done", marks
    times = [float(m[-1]) for m in marks]
    step_s = {name: times[k + 1] - times[k] for k, name in enumerate(STEPS)}
    duration = times[-1]
    w.wait(timeout=300)
    rng = random.Random(1234)
    outcomes = {"1.0.0": 0, "1.1.0": 0}
    nxt = spawn(states[1], keys.public_path, packages["1.1.0"])
    started = time.monotonic()
    for i in range(1, TRIALS + 1):
        w, nxt = nxt, (spawn(states[i + 1], keys.public_path, packages["1.1.0"]) if i < TRIALS else None)
        assert w.stdout.readline().strip() == "ready"
        w.stdin.write("go extract\n" if i % 4 == 3 else "go\n")
        w.stdin.flush()
        aim = kill_at(w, i, states[i], rng, step_s)
        w.send_signal(signal.SIGKILL)
        w.wait(timeout=300)
        store = Store(states[i], keys.public_path)
        recover(store)
        version = slot_ok(store)
        assert version in outcomes, f"trial {i}: current is {version}"
        if aim in AIM_OUTCOME:  # killed on a state the outcome follows from
            assert version == AIM_OUTCOME[aim], f"trial {i}: killed at {aim}, came back as {version}"
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
