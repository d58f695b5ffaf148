"""Where a check-in's server CPU goes, per thread of ``liteship serve`` (issue 24.6).

The same load as ``fleet_load.py --variants`` (SQLite, 1 worker, wrk, 200 devices, 8 s, 16 connections);
the CPU time of each thread of the server process from ``/proc/<pid>/task/*/stat``, per check-in. On
SQLite the event loop's thread and, when check-ins are handed to it, the ``liteship-checkin`` writer.

    PYTHONPATH=src .venv/bin/python benchmarks/checkin_threads.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_load as fl  # noqa: E402


def per_thread(pid: int) -> dict[tuple[str, str], float]:
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
            name = Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[(task, name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main() -> None:
    fl.RUNTIME.clear()
    fl.RUNTIME.update(fl.VARIANT_RUNTIME)
    tmp = Path(tempfile.mkdtemp(prefix="liteship-threads-"))
    key, packages = fl.make_packages(tmp, variants=True)
    port = fl.free_port()
    proc = fl.start_server(tmp / "data", port, None, 1, key)
    try:
        url = f"http://127.0.0.1:{port}"
        devices = fl.prepare(url, packages, 200, variants=True)
        before = per_thread(proc.pid)
        r = fl.run_wrk(url, devices, 8.0, 16, tmp)
        after = per_thread(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    n = max(1, r["requests"])
    for key_, cpu in sorted(after.items()):
        spent = cpu - before.get(key_, 0.0)
        if spent > 0.01:
            print(f"thread {key_[0]} ({key_[1]}): {1000 * spent / n:.3f} ms per check-in")
    total = sum(cpu - before.get(k, 0.0) for k, cpu in after.items())
    print(
        f"all threads: {1000 * total / n:.3f} ms per check-in, {r['requests']} check-ins, {r['errors']} errors"
    )


if __name__ == "__main__":
    main()
