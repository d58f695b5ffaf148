"""The dashboard's SVG line charts label their time axis with the times the data covers (issue 22, 8)."""

from __future__ import annotations

import calendar
import re

from liteship.fleet.charts import Series, line_chart

HOUR = 3600.0


def axis(svg: str) -> tuple[str, str]:
    start = re.search(r'class="axis-start"[^>]*>([^<]*)<', svg)
    end = re.search(r'class="axis-end"[^>]*>([^<]*)<', svg)
    assert start and end, svg
    return start.group(1), end.group(1)


def test_one_period_of_an_hour_reads_from_its_start_to_its_end():
    """Before: one point was drawn on an axis of ±30 s around the period's start, so an hour of
    telemetry from 10:00 to 10:59 read "09:59 … 10:00 UTC"."""
    t = calendar.timegm((2026, 12, 5, 10, 0, 0))
    svg = line_chart([Series("1.2.0", [(t, 0.02)], "#000")], label="drift", period_s=HOUR)
    assert axis(svg) == ("10:00", "11:00 UTC")
    assert "10:00–11:00: 0.02" in svg  # the point's tooltip names its period
    # the point sits in the middle of the axis (its period's middle), not at an edge
    (cx,) = re.findall(r'<circle cx="([0-9.]+)"', svg)
    assert abs(float(cx) - (44 + (460 - 54) / 2)) < 1


def test_several_periods_and_a_span_over_midnight_carry_the_date():
    t = calendar.timegm((2026, 12, 4, 22, 0, 0))
    svg = line_chart(
        [Series("a", [(t, 0.1), (t + HOUR, 0.2), (t + 3 * HOUR, 0.3)], "#000")], label="drift", period_s=HOUR
    )
    assert axis(svg) == ("12-04 22:00", "12-05 02:00 UTC")
    same_day = line_chart([Series("a", [(t - 2 * HOUR, 0.1), (t, 0.2)], "#000")], label="x", period_s=HOUR)
    assert axis(same_day) == ("20:00", "23:00 UTC")


def test_without_a_period_the_points_are_instants():
    t = calendar.timegm((2026, 12, 5, 10, 15, 0))
    svg = line_chart([Series("a", [(t, 1.0), (t + 600, 2.0)], "#000")], label="x")
    assert axis(svg) == ("10:15", "10:25 UTC")
