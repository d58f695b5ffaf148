"""Check-in server CPU, two liteship source trees side by side in one session (issue 24.6).

Runs :func:`fleet_load.checkin_run` (``liteship serve`` in a subprocess, wrk as the client, 200 devices,
8 s, 16 connections) alternately with the server's ``PYTHONPATH`` set to ``--before`` and ``--after``,
``--rounds`` times; with ``--plain`` each round also runs with the issue 24 features off. On
``--store postgres`` a throwaway PostgreSQL is started (as in the tests) and each run gets a fresh
database, and PostgreSQL's own CPU per check-in (all its processes) is reported too. Prints one JSON
line per run, then a table.

    git archive <commit> src | tar -x -C /tmp/before   # the tree to compare against
    PYTHONPATH=src .venv/bin/python benchmarks/checkin_compare.py --before /tmp/before/src --after src --plain
    PYTHONPATH=src .venv/bin/python benchmarks/checkin_compare.py --before /tmp/before/src --after src --store postgres
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_load as fl  # noqa: E402

COLUMNS = ["tree", "round", "variants", "store", "requests", "errors", "checkins_per_s", "p99_ms",
           "server_cpu_ms_per_checkin", "db_cpu_ms_per_checkin", "other_cores", "loadavg_1m_before"]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="the src directory of the tree to compare against")
    p.add_argument("--after", required=True, help="the src directory of the tree measured")
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--plain", action="store_true", help="each round also with the issue 24 features off")
    p.add_argument("--seconds", type=float, default=8.0)
    a = p.parse_args()
    trees = {"before": str(Path(a.before).resolve()), "after": str(Path(a.after).resolve())}
    plain_runtime = dict(fl.RUNTIME)
    rows = []
    with contextlib.ExitStack() as stack:
        base, pid = stack.enter_context(fl.throwaway_postgres()) if a.store == "postgres" else (None, None)
        for n in range(1, a.rounds + 1):
            for variants in (True, False) if a.plain else (True,):
                for name, tree in trees.items():
                    os.environ["PYTHONPATH"] = tree  # the server subprocess imports liteship from here
                    fl.RUNTIME.clear()
                    fl.RUNTIME.update(fl.VARIANT_RUNTIME if variants else plain_runtime)
                    args = argparse.Namespace(
                        devices=200, seconds=a.seconds, concurrency=16, client="wrk", variants=variants
                    )
                    row = fl.checkin_run(args, fl.fresh_database(base) if base else None, 1, pid)
                    row.update(tree=name, round=n)
                    rows.append(row)
                    print(json.dumps({k: row.get(k) for k in COLUMNS}), flush=True)
    print(fl._table(rows, COLUMNS))


if __name__ == "__main__":
    main()
