"""The latency/accuracy Pareto front (used by the report; no pipeline import)."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names on the latency/accuracy Pareto front of ``(name, latency, accuracy)`` points:
    no other point is both at least as fast and at least as accurate, and strictly better in one."""
    front = []
    for name, lat, acc in points:
        dominated = any((ol <= lat and oa >= acc) and (ol < lat or oa > acc) for _, ol, oa in points)
        if not dominated:
            front.append(name)
    return front


__all__ = ["pareto_front"]
