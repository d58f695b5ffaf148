"""Bench-job API tests reuse the fleet server fixtures (apps on SQLite and PostgreSQL through FastAPI's
TestClient): tests/integration/fleet/conftest.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "fleet" / "conftest.py"
# the module pytest already loaded, when the fleet tests run in the same session (one PostgreSQL server)
_loaded = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == str(_path)]
if _loaded:
    _fleet = _loaded[0]
else:
    _spec = importlib.util.spec_from_file_location("fleet_integration_conftest_for_jobs", _path)
    _fleet = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _fleet
    _spec.loader.exec_module(_fleet)

ADMIN, ENROLL, MODEL_FILE = _fleet.ADMIN, _fleet.ENROLL, _fleet.MODEL_FILE
keys, make_package, make_settings, db_url, fleet = (
    _fleet.keys,
    _fleet.make_package,
    _fleet.make_settings,
    _fleet.db_url,
    _fleet.fleet,
)
postgres_server, postgres_url = _fleet.postgres_server, _fleet.postgres_url
live_server = _fleet.live_server
