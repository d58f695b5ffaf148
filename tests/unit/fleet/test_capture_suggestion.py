"""The capture suggestion drift makes (issue 25), for a release or one of its variants (issue 24)."""

from __future__ import annotations

from liteship.fleet.samples_client import suggest_capture, suggestion_command


def _series(level: str, variants: dict[str, str] | None = None) -> list[dict]:
    rows = [{"variant": name, "latest_level": lv} for name, lv in (variants or {}).items()]
    return [{"version": "1.0.0", "latest_level": level, "variants": rows}]


def test_no_alert_no_suggestion():
    assert suggest_capture(_series("ok")) is None
    assert suggest_capture(_series("watch", {"float": "ok", "int8": "watch"})) is None
    assert suggest_capture([]) is None


def test_the_release_in_the_alert_band_is_named():
    got = suggest_capture(_series("alert", {"float": "alert"}))
    assert got is not None and got["versions"] == ["1.0.0"]


def test_a_drifting_variant_of_a_healthy_release_suggests_capture_and_says_which():
    got = suggest_capture(_series("ok", {"float": "ok", "int8-dotprod": "alert"}))
    assert got is not None and got["versions"] == ["1.0.0 (variant int8-dotprod)"]
    assert suggestion_command("digits", got).startswith(
        "liteship fleet capture on digits --trigger random@0.1"
    )
