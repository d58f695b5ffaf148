"""Profile-job figures of the shipped variant(s) in the pipeline report: per device and variant, the
whole model's figures and the ops slowest first; report.html renders the table and the chart once."""

from __future__ import annotations

from liteship.pipeline.device_profile import profile_from_job
from liteship.pipeline.report import PipelineReport, VariantResult
from liteship.report.pipeline_html import render_pipeline_html

OPS = [
    {"index": 0, "op": "CONV_2D", "ran_on": "XNNPACK", "ms": 0.05},
    {"index": 1, "op": "DEPTHWISE_CONV_2D", "ran_on": "XNNPACK", "ms": 0.2},
    {"index": 2, "op": "RESHAPE", "ran_on": "CPU", "ms": 0.0},
]
JOB = {
    "id": "job-p",
    "kind": "profile",
    "tasks": [
        {"device_id": "pi-1", "state": "done", "results": [
            {"name": "int8.tflite", "ok": True, "ops": OPS, "load_ms": 3.0, "first_inference_ms": 1.0,
             "invoke_ms": 0.26, "ops_total_ms": 0.25, "peak_rss_bytes": 50 * 2**20, "delegated_nodes": 2},
            {"name": "none.tflite", "ok": False, "error": "unknown op"}]},
        {"device_id": "pi-2", "state": "running", "results": None},
    ],
}  # fmt: skip


def test_rows_slowest_op_first_and_silent_devices_named():
    prof = profile_from_job(JOB, {"int8.tflite": "int8", "none.tflite": "none"})
    ok, bad = prof.rows
    assert (ok.recipe, ok.device_id, ok.invoke_ms, ok.delegated_nodes) == ("int8", "pi-1", 0.26, 2)
    assert [o["op"] for o in ok.ops] == ["DEPTHWISE_CONV_2D", "CONV_2D", "RESHAPE"]
    assert not bad.ok and bad.error == "unknown op" and bad.recipe == "none"
    assert prof.missing == {"pi-2": "running: no answer"} and "no figures from pi-2" in prof.message


def test_report_html_shows_the_profile_once():
    prof = profile_from_job(JOB, {"int8.tflite": "int8", "none.tflite": "none"})
    base = dict(
        model_id="m", version="1.0.0", source="m.keras", output_dir="out", objective="latency",
        selection_threads=1, variants=[VariantResult("int8", "int8.tflite", True, p50_ms=0.3)], chosen="int8",
    )  # fmt: skip
    page = render_pipeline_html(PipelineReport(**base, device_profile=prof))
    section = page[page.index('id="device-profile"') :]
    assert page.count('id="device-profile"') == 1 and "<svg" in section
    assert section.index("DEPTHWISE_CONV_2D") < section.index("CONV_2D (XNNPACK)")  # slowest first
    assert "80.0%" in section and "peak RSS 50.0 MiB" in section and "unknown op" in section
    assert (
        PipelineReport(**base, device_profile=prof).to_dict()["device_profile"]["rows"][0]["ops"][0]["ms"]
        == 0.2
    )
    assert 'id="device-profile"' not in render_pipeline_html(PipelineReport(**base))
