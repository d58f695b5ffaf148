"""The admin client's field-capture calls (``liteship fleet capture`` / ``fleet samples``), on
:class:`liteship.fleet.client.AdminClient`.

>>> c = SamplesClient("http://127.0.0.1:8700", token="…")                        # doctest: +SKIP
>>> c.capture_on("digits", rules=[parse_trigger("low-confidence:0.6")])        # doctest: +SKIP
>>> c.export("digits", "field.npz", since=parse_since("24h"))["samples"]        # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx

from liteship.errors import UsageError
from liteship.fleet.client import AdminClient

TRIGGERS = ("low-confidence", "out-of-range", "class", "random")
ALERT_LEVEL = "alert"  # liteship.fleet.drift's level at PSI >= 0.2


def parse_trigger(text: str) -> dict[str, Any]:
    """``low-confidence:0.6``, ``out-of-range``, ``class:3,7``, ``random``; each may end in ``@RATE``
    (the share of matching inferences kept, 0..1): ``random@0.05``.

    Raises:
        UsageError: An unknown trigger, a missing or bad argument, a rate outside 0..1.
    """
    body, _, rate_text = text.strip().partition("@")
    name, _, arg = body.partition(":")
    if name not in TRIGGERS:
        raise UsageError(f"unknown trigger {name!r}; expected one of {', '.join(TRIGGERS)}.")
    rule: dict[str, Any] = {"trigger": name}
    try:
        if rate_text:
            rule["rate"] = float(rate_text)
            if not 0.0 <= rule["rate"] <= 1.0:
                raise ValueError
        if name == "low-confidence":
            rule["threshold"] = float(arg)
            if not 0.0 < rule["threshold"] <= 1.0:
                raise ValueError
        elif name == "class":
            rule["classes"] = [int(c) for c in arg.split(",") if c.strip()]
            if not rule["classes"] or min(rule["classes"]) < 0:
                raise ValueError
        elif arg:
            raise ValueError
    except ValueError:
        raise UsageError(
            f"cannot read the trigger {text!r}.",
            hint="Use low-confidence:0.6, out-of-range, class:3,7 or random, optionally ending in "
            "@RATE (0..1), e.g. random@0.05.",
        ) from None
    return rule


def parse_since(text: str, now: float | None = None) -> float:
    """``24h``, ``7d``, ``30m`` (ago) or an ISO 8601 date/time (UTC unless it says otherwise).

    Raises:
        UsageError: Neither.
    """
    now = now if now is not None else time.time()
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if m:
        return now - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"cannot read --since {text!r}.", hint="Give an age (30m, 24h, 7d) or a date (2026-12-01T08:00)."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def suggest_capture(series: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The suggested capture rules when some version's drift, or one of its variants', is in the alert
    band, else None.

    ``random`` keeps an unbiased sample (what calibration needs), ``low-confidence`` the inputs the model
    is unsure of (what is worth labeling for validation), ``out-of-range`` the inputs outside the
    calibration range the int8 model was built for.
    """
    alerting: list[str] = []
    for s in series:  # the release as a whole, or one of its variants (issue 24: drift per variant)
        variants = [v.get("variant") for v in s.get("variants") or [] if v.get("latest_level") == ALERT_LEVEL]
        if s.get("latest_level") == ALERT_LEVEL:
            alerting.append(str(s["version"]))
        elif variants:
            alerting.append(f"{s['version']} (variant {', '.join(str(v) for v in variants)})")
    if not alerting:
        return None
    rules = [
        {"trigger": "random", "rate": 0.1},
        {"trigger": "low-confidence", "threshold": 0.5},
        {"trigger": "out-of-range"},
    ]
    return {
        "versions": alerting,
        "rules": rules,
        "per_hour": 30,
        "per_day": 200,
        "triggers": ["random@0.1", "low-confidence:0.5", "out-of-range"],
    }


def suggestion_command(model_id: str, suggestion: dict[str, Any]) -> str:
    triggers = " ".join(f"--trigger {t}" for t in suggestion["triggers"])
    return (
        f"liteship fleet capture on {model_id} {triggers} --per-hour {suggestion['per_hour']} "
        f"--per-day {suggestion['per_day']}"
    )


class SamplesClient(AdminClient):
    """Turn capture on/off, list and label samples, export them."""

    def capture_on(self, model_id: str, **body: Any) -> Any:
        return self._call("PUT", f"/api/v1/models/{model_id}/capture", json=body)

    def capture_off(self, model_id: str) -> Any:
        return self._call("DELETE", f"/api/v1/models/{model_id}/capture")

    def capture_status(self, model_id: str) -> Any:
        return self._call("GET", f"/api/v1/models/{model_id}/capture")

    def samples(self, **params: Any) -> Any:
        return self._call("GET", "/api/v1/samples", params={k: v for k, v in params.items() if v is not None})

    def label(self, sample: int, *, label: int | None = None, discarded: bool | None = None) -> Any:
        body: dict[str, Any] = {}
        if label is not None:
            body["label"] = label
        if discarded is not None:
            body["discarded"] = discarded
        return self._call("POST", f"/api/v1/samples/{sample}/label", json=body)

    def purge(self, model_id: str, *, before: float) -> Any:
        return self._call("DELETE", f"/api/v1/models/{model_id}/samples", params={"before": before})

    def export(
        self,
        model_id: str,
        output: str | Path,
        *,
        since: float | None = None,
        version: str | None = None,
        labeled_only: bool = False,
    ) -> dict[str, Any]:
        """Write the model's samples to ``output`` (atomically); returns what was exported."""
        params: dict[str, Any] = {"labeled_only": labeled_only}
        if since is not None:
            params["since"] = since
        if version is not None:
            params["version"] = version
        try:
            r = self._http.get(f"/api/v1/models/{model_id}/samples/export", params=params)
        except httpx.HTTPError:  # the same message as every other call
            return self._call("GET", f"/api/v1/models/{model_id}/samples/export", params=params)
        if r.status_code >= 400:
            return self._call("GET", f"/api/v1/models/{model_id}/samples/export", params=params)
        out = Path(output)
        if out.parent and not out.parent.is_dir():
            raise UsageError(f"folder {str(out.parent)!r} does not exist.", hint="Create it or change -o.")
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_bytes(r.content)
        os.replace(tmp, out)
        summary: dict[str, Any] = json.loads(r.headers.get("x-liteship-export") or "{}")
        summary["output"] = str(out)
        return summary


__all__ = ["SamplesClient", "parse_since", "parse_trigger", "suggest_capture", "suggestion_command"]
