"""Selection on device figures (liteship.pipeline.device_select): median over devices, per-variant
errors, partial answers, the pipeline's gates applied to device latency, per-group choices, fallback."""

from __future__ import annotations

import json

from liteship.pipeline.device_select import select_on_devices, write_selection

PI = {"machine": "aarch64", "isa": ["neon", "dotprod"]}
PC = {"machine": "x86_64", "isa": ["avx2"]}


def report(**gates):
    def v(recipe, p50, drop=0.1):
        return {
            "recipe": recipe,
            "path": f"/x/{recipe}.tflite",
            "ok": True,
            "size_bytes": 1000,
            "p50_ms": p50,
            "accuracy_drop": drop,
            "agreement_top1": 0.99,
            "validation_passed": True,
        }

    variants = [v("float32", 10.0, 0.0), v("int8", 10.5), v("float16", 9.0, 5.0)]
    return {
        "variants": variants,
        "gates": {"max_accuracy_drop": 1.0, **gates},
        "objective": "latency",
        "chosen": "float32",
    }


def task(device, profile, figures, state="done"):
    results = [
        {"name": f"{n}.tflite", "ok": p is not None, "p50_ms": p, "error": None if p else "unsupported op"}
        for n, p in figures.items()
    ]
    return {
        "device_id": device,
        "state": state,
        "profile": profile,
        "results": results if state == "done" else None,
    }


def test_median_device_p50_changes_the_choice_and_keeps_the_gates():
    job = {
        "id": "job-1",
        "tasks": [
            task("pi-1", PI, {"float32": 30.0, "int8": 12.0, "float16": 1.0}),
            task("pi-2", PI, {"float32": 31.0, "int8": 13.0, "float16": 1.0}),
            task("pi-3", PI, {"float32": 29.0, "int8": 50.0, "float16": 1.0}),
        ],
    }
    sel = select_on_devices(report(), job)
    assert sel.chosen == "int8" and sel.workstation_chosen == "float32" and not sel.fallback
    lat = {v.recipe: v for v in sel.variants}
    assert lat["int8"].device_p50_ms == 13.0 and lat["float32"].device_p50_ms == 30.0  # medians
    assert "accuracy drop" in " ".join(sel.failures["float16"])  # fastest on the device, fails a gate
    strict = select_on_devices(report(max_latency_ms=12.5), job)
    assert strict.chosen is None and "p50 latency 13.000 ms > max_latency_ms 12.5" in " ".join(
        strict.failures["int8"]
    )


def test_per_variant_errors_partial_answers_and_groups():
    job = {
        "id": "job-2",
        "tasks": [
            task("pi-1", PI, {"float32": 30.0, "int8": 12.0}),
            task("pc-1", PC, {"float32": 8.0, "int8": None}),
            task("pc-2", PC, {}, state="queued"),
        ],
    }
    sel = select_on_devices(report(), job, per_group=True)
    assert sel.missing == {"pc-2": "queued: no answer"} and "no figures from pc-2" in sel.message
    lat = {v.recipe: v for v in sel.variants}
    assert lat["int8"].errors == {"pc-1": "unsupported op"} and lat["int8"].devices == {"pi-1": 12.0}
    assert "not benchmarked on the devices" in sel.failures["float16"][0]
    groups = {g.group: g for g in sel.groups}
    assert groups["aarch64+neon+dotprod"].chosen == "int8"
    assert groups["x86_64+avx2"].chosen == "float32" and groups["x86_64+avx2"].devices == ["pc-1"]


def test_no_answer_falls_back_to_workstation_flagged(tmp_path):
    job = {
        "id": "job-3",
        "tasks": [task("pi-1", PI, {}, state="queued"), task("pi-2", PI, {}, state="running")],
    }
    sel = select_on_devices(report(), job)
    assert sel.fallback and sel.chosen == "float32" and sel.basis == "workstation (fallback)"
    assert "pi-1 (queued), pi-2 (running)" in sel.message
    (tmp_path / "report.html").write_text("<html><body>x</body></html>")
    write_selection(tmp_path / "report.json", report(), sel)
    write_selection(tmp_path / "report.json", report(), sel)  # replaces its own section, never doubles it
    html = (tmp_path / "report.html").read_text()
    assert html.count('id="device-selection"') == 1 and "workstation figures (fallback)" in html
    assert json.loads((tmp_path / "report.json").read_text())["device_selection"]["fallback"] is True
