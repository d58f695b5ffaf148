"""Issue 23.2: a variant that passes the gates on the workstation and fails them on a hardware group is
not selected for that group; the report says so side by side (liteship.pipeline.device_gate)."""

from __future__ import annotations

import pytest

from liteship.errors import PipelineError
from liteship.pipeline.device_gate import apply, device_gate, report_gates

REPORT = {
    "objective": "latency",
    "gates": {"max_accuracy_drop": 1.0, "min_agreement": 0.9, "min_sqnr": None},
    "variants": [
        {"recipe": "float32", "ok": True, "size_bytes": 400, "p50_ms": 2.0, "accuracy_drop": 0.0,
         "agreement_top1": 1.0, "validation_passed": True, "gates_passed": True},
        {"recipe": "int8", "ok": True, "size_bytes": 100, "p50_ms": 1.0, "accuracy_drop": 0.2,
         "agreement_top1": 0.99, "validation_passed": True, "gates_passed": True},
    ],
}  # fmt: skip


def group(name: str, variant: str, passed: bool, failures: list[str] | None = None) -> dict:
    return {"group": name, "variant": variant, "devices": [f"{name}-1"], "answered": 1, "missing": [],
            "passed": passed, "failures": failures or []}  # fmt: skip


def job(*groups: dict) -> dict:
    return {"id": "job-0123456789abcdef", "kind": "validate", "settings": {"gates": {"min_agreement": 0.9}},
            "groups": list(groups)}  # fmt: skip


def test_a_group_where_the_fast_variant_fails_gets_the_other_one():
    bad = "output 'y': top-1 agreement 0.42 < min_agreement 0.9"
    gate = device_gate(
        REPORT,
        job(
            group("x86_64+avx2", "float32.tflite", True),
            group("x86_64+avx2", "int8.tflite", True),
            group("aarch64+neon", "float32.tflite", True),
            group("aarch64+neon", "int8.tflite", False, [bad]),
        ),
    )
    by = {g.group: g for g in gate.groups}
    assert by["x86_64+avx2"].chosen == "int8"  # the workstation's choice where the devices agree
    arm = by["aarch64+neon"]
    assert arm.chosen == "float32" and arm.workstation == {"float32": True, "int8": True}
    assert arm.device == {"float32": True, "int8": False}
    assert arm.excluded["int8"] == [f"on aarch64+neon: {bad}"]
    assert gate.failed_groups == []
    out = apply(REPORT, gate)
    assert (
        out["device_validation"]["groups"][0]["group"] == "aarch64+neon" and "device_validation" not in REPORT
    )


def test_a_group_where_every_variant_fails_has_no_choice_and_silence_is_failure():
    silent = {**group("aarch64+neon", "float32.tflite", False), "answered": 0, "missing": ["pi-1"]}
    gate = device_gate(REPORT, job(silent, group("aarch64+neon", "int8.tflite", False, ["NaN"])))
    (g,) = gate.groups
    assert (
        g.chosen is None
        and g.device == {"float32": None, "int8": False}
        and gate.failed_groups == ["aarch64+neon"]
    )
    assert "missing: pi-1" in g.excluded["float32"][0]


def test_gates_and_wrong_jobs():
    assert report_gates(REPORT) == {"min_agreement": 0.9, "max_accuracy_drop": 1.0}
    with pytest.raises(PipelineError, match="bench job"):
        device_gate(REPORT, {"id": "j", "kind": "bench"})
    with pytest.raises(PipelineError, match="none of the report's variants"):
        device_gate(REPORT, job(group("g", "other.tflite", True)))


def test_each_group_chooses_on_its_own_device_p50_and_keeps_the_device_figures():
    """In the pipeline the group's own bench p50 decides among the variants that pass its validation."""
    fig = {"top1_min": 0.97, "accuracy_min": 0.95, "sqnr_db_min": 21.5, "max_abs_error": 0.1}
    rows = [
        {**group(g, f"{r}.tflite", True), **fig}
        for g in ("x86_64+avx2", "aarch64+neon+dotprod")
        for r in ("float32", "int8")
    ]
    p50 = {
        "x86_64+avx2": {"float32": 1.0, "int8": 1.5},
        "aarch64+neon+dotprod": {"float32": 3.0, "int8": 1.0},
    }
    gate = device_gate(REPORT, job(*rows), p50_by_group=p50)
    by = {g.group: g for g in gate.groups}
    assert by["x86_64+avx2"].chosen == "float32" and by["aarch64+neon+dotprod"].chosen == "int8"
    assert by["x86_64+avx2"].figures["int8"]["sqnr_db_min"] == 21.5
    assert "x86_64+avx2 → float32" in gate.message and not gate.fallback
    # without per-group figures: the report's p50 for every group (int8 is faster on the workstation)
    assert {g.chosen for g in device_gate(REPORT, job(*rows)).groups} == {"int8"}
    # `fleet validate gate` on a report that `pipeline select --per-group` wrote: its groups' p50
    selected = {
        **REPORT,
        "device_selection": {"groups": [{"group": g, "device_p50_ms": p} for g, p in p50.items()]},
    }
    assert {g.group: g.chosen for g in device_gate(selected, job(*rows)).groups} == {
        "x86_64+avx2": "float32",
        "aarch64+neon+dotprod": "int8",
    }


def test_the_pipeline_gate_falls_back_flagged_when_no_job_could_be_queued():
    from liteship.pipeline.device_gate import Queued, gate_in_pipeline

    logged: list[str] = []
    gate = gate_in_pipeline(
        REPORT, Queued(gates={"min_agreement": 0.9}, error="cannot reach the fleet server"),
        timeout_s=1, p50_by_group=None, log=logged.append,
    )  # fmt: skip
    assert gate.fallback and gate.groups == [] and "cannot reach the fleet server" in gate.message
    assert gate.failed_groups == [] and "device validation" in logged[-1]
