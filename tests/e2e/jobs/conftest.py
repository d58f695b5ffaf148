"""Bench-job tests reuse the agent end-to-end fixtures: the real fleet server on loopback, enrolled
devices, real agent processes (tests/e2e/agent/conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "agent" / "conftest.py"
if "agent_e2e_conftest" in sys.modules:
    _e2e = sys.modules["agent_e2e_conftest"]
else:
    _spec = importlib.util.spec_from_file_location("agent_e2e_conftest_for_jobs", _path)
    _e2e = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _e2e
    _spec.loader.exec_module(_e2e)  # registers itself as sys.modules["agent_e2e_conftest"]

fleet, enrolled, keys, golden, packages, digit_pngs = (
    _e2e.fleet,
    _e2e.enrolled,
    _e2e.keys,
    _e2e.golden,
    _e2e.packages,
    _e2e.digit_pngs,
)

_helpers_spec = importlib.util.spec_from_file_location(
    "jobs_e2e_helpers", Path(__file__).parent / "jobs_helpers.py"
)
_helpers = importlib.util.module_from_spec(_helpers_spec)
sys.modules["jobs_e2e_helpers"] = _helpers
_helpers_spec.loader.exec_module(_helpers)
