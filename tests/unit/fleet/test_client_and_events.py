"""The admin client's messages (parameters, not flags) and the check-in's revert-event parsing."""

from __future__ import annotations

import httpx
import pytest

from liteship.errors import FleetError
from liteship.fleet.checkin import Plan, ReleaseRef, revert_events
from liteship.fleet.client import AdminClient


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused.", request=request)


def test_default_server_is_named_in_the_connection_error(monkeypatch):
    monkeypatch.delenv("LITESHIP_SERVER", raising=False)
    client = AdminClient(token="t", transport=httpx.MockTransport(_refuse))
    with pytest.raises(FleetError) as e:
        client.devices()
    text = str(e.value)
    assert "http://127.0.0.1:8700 (the default: no `server` was given)" in text
    assert "Connection refused." in text and ".." not in text and "--" not in text


def test_messages_name_parameters(monkeypatch):
    for name in ("LITESHIP_TOKEN", "LITESHIP_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(FleetError, match="Pass `token` or set LITESHIP_TOKEN"):
        AdminClient("http://x:1")
    with pytest.raises(FleetError, match="`server` must be an http:// or https:// URL, got 'notaurl'"):
        AdminClient("notaurl", "t")


def test_revert_events_keep_valid_reverts_only():
    """Only the explicit ``"by": "server"`` marks a server-requested revert; the reason text is not read."""
    at = 1_700_000_000.0
    health = {
        "pending": None,
        "events": [
            {"event": "reverted", "version": "1.1.0", "to": "1.0.0", "reason": "NaN output", "at": at},
            {
                "event": "reverted",
                "version": "1.2.0",
                "to": None,
                "reason": "server assigned the fallback 1.0.0: x",
                "at": at,
            },
            {"event": "reverted", "version": "1.3.0", "by": "server", "at": at},
            {"event": "committed", "version": "1.1.0", "at": at},
            {"event": "reverted", "version": "", "at": at},
            {"event": "reverted", "version": "1.1.0", "at": "yesterday"},
            {"event": "reverted", "version": "1.1.0", "at": float("nan")},
            {"event": "reverted", "version": "1.1.0", "at": 10**400},
            {"event": "reverted", "version": "1.1.0", "at": -1},
            "not a dict",
        ],
    }
    rows = revert_events(health)
    assert [(r["version"], r["to_version"], r["by_server"]) for r in rows] == [
        ("1.1.0", "1.0.0", False),
        ("1.2.0", None, False),  # a server-sounding reason without "by" is the device's own
        ("1.3.0", None, True),
    ]
    assert revert_events(None) == [] and revert_events({"events": "x"}) == []


def test_rollback_to_control_only_for_devices_on_the_rolled_back_candidate():
    stable = ReleaseRef("1.0.0", "digits/1.0.0/digits-1.0.0.lsp", "a" * 64, 10)
    plan = Plan(stable=stable, rolled_back_id=7, rolled_back_state="halted", rolled_back_version="1.1.0")
    a = plan.assign(device_id="d", model_id="digits", bucket=1, current_version="1.1.0")
    assert (a.version, a.reason_code, a.allow_downgrade_to, a.rollout_id) == (
        "1.0.0",
        "rollback-to-control",
        "1.0.0",
        7,
    )
    assert "rollout 7 was halted" in a.reason
    b = plan.assign(device_id="d", model_id="digits", bucket=1, current_version="1.0.0")
    assert (b.reason_code, b.allow_downgrade_to) == ("stable", None)
