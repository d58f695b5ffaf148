"""The device profile line (`fleet devices`, dashboard) says when an accelerator fell back (issue 15)."""

from __future__ import annotations

from liteship.fleet.profile import runtime_text


def test_profile_line_shows_the_accelerator_fallback():
    base = {"machine": "aarch64", "litert": "2.3.0", "accelerator": "cpu"}
    assert runtime_text(base) == "aarch64 · LiteRT 2.3.0 · cpu"
    fell = {**base, "accelerator_requested": "gpu,cpu", "accelerator_fallback": "No adapters found"}
    assert runtime_text(fell) == "aarch64 · LiteRT 2.3.0 · cpu · fell back from gpu,cpu: No adapters found"
