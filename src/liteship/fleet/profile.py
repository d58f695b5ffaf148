"""Device profiles (check-in ``runtime``) and health, as people read them: one line each.

Used by the dashboard and the device listing of the API (``profile_summary``, ``health_summary``), which
``liteship fleet devices`` prints. No web framework here, so the CLI side can import it too.
"""

from __future__ import annotations

from typing import Any


def runtime_text(runtime: dict[str, Any] | None) -> str:
    """One line of a device profile: machine, CPU, cores, memory, ISA, LiteRT and accelerator."""
    if not isinstance(runtime, dict) or not runtime:
        return "not reported"
    parts = [str(runtime[k]) for k in ("machine", "cpu_model") if runtime.get(k)]
    if runtime.get("cores"):
        parts.append(f"{runtime['cores']} cores")
    if runtime.get("memory_mb"):
        parts.append(f"{runtime['memory_mb']} MB")
    if isinstance(runtime.get("isa"), list) and runtime["isa"]:
        parts.append("/".join(str(i) for i in runtime["isa"][:8]))
    if runtime.get("litert"):
        parts.append(f"LiteRT {runtime['litert']}")
    if runtime.get("accelerator"):
        parts.append(str(runtime["accelerator"]))
    if runtime.get("accelerator_fallback"):  # issue 15: the accelerator asked for did not start
        asked = f" from {runtime['accelerator_requested']}" if runtime.get("accelerator_requested") else ""
        parts.append(f"fell back{asked}: {runtime['accelerator_fallback']}")
    if not parts:  # an older agent: whatever it sent
        parts = [f"{k}={v}" for k, v in list(runtime.items())[:4]]
    return " · ".join(parts)


def health_text(health: dict[str, Any] | None, reverts: int) -> str:
    """The device's health state now: a health window in progress, refused versions, its own reverts."""
    if not isinstance(health, dict):
        return "not reported"
    parts = []
    pending = health.get("pending")
    if isinstance(pending, dict) and pending.get("version"):
        inferences, elapsed = pending.get("inferences"), pending.get("elapsed_s")
        window = f"health window on {pending['version']}"
        if isinstance(inferences, int):
            window += f": {inferences} inferences"
        if isinstance(elapsed, int | float):
            window += f", {float(elapsed):.0f} s"
        parts.append(window)
    failed = health.get("failed_versions")
    if isinstance(failed, list) and failed:
        parts.append("refuses " + ", ".join(str(v) for v in failed[:5]))
    if health.get("last_error"):
        parts.append(f"last error: {str(health['last_error'])[:120]}")
    if health.get("status") and not parts:
        parts.append(str(health["status"]))
    parts.append(f"{reverts} device revert{'s' if reverts != 1 else ''}")
    return "; ".join(parts)


def group_key(runtime: dict[str, Any] | None, key: str) -> str:
    """The value a device is grouped by for ``key`` (lists joined with ``/``; ``unknown`` if absent)."""
    value = runtime.get(key.removeprefix("profile.")) if isinstance(runtime, dict) else None
    if value is None or value == "" or value == []:
        return "unknown"
    return "/".join(str(v) for v in value) if isinstance(value, list) else str(value)
