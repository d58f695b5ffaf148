from liteship.pipeline.report import PipelineReport, VariantResult
from liteship.report.pipeline_html import render_pipeline_html, tradeoff_chart


def variant(name, p50, acc, size, **kw):
    return VariantResult(
        recipe=name,
        path=f"{name}.tflite",
        ok=True,
        p50_ms=p50,
        p95_ms=p50,
        p99_ms=p50,
        accuracy=acc,
        size_bytes=size,
        gates_passed=True,
        **kw,
    )


def test_tradeoff_chart_switches_to_a_log_axis_and_marks_the_front():
    vs = [
        variant("none", 2.0, 0.9, 9000),
        variant("int8", 0.8, 0.89, 2500),
        variant("int16x8", 140.0, 0.9, 2800),
    ]
    svg = tradeoff_chart(vs, "int8")
    assert "log scale" in svg
    assert ">1</text>" in svg and ">100</text>" in svg  # ticks labelled in ms, not log10
    assert svg.count("<circle") == 3 and "int8 ★" in svg
    near = tradeoff_chart([variant("a", 1.0, 0.9, 10), variant("b", 2.0, 0.8, 10)], None)
    assert "log scale" not in near


def test_a_pruned_variant_is_hollow_and_off_the_front():
    # validated on 50 samples only, int8-fallback reads 0.98 and would sit on the front of the others
    vs = [
        variant("none", 3.0, 0.90, 9000),
        variant("int8", 2.9, 0.88, 2500),
        variant("int8-fallback", 5.3, 0.98, 2600, pruned="slower than float32"),
    ]
    svg = tradeoff_chart(vs, "none")
    hollow = [c for c in svg.split("<circle")[1:] if 'fill="none"' in c]
    assert len(hollow) == 1 and "int8-fallback" in hollow[0] and "quick benchmark" in hollow[0]
    assert "int8-fallback †" in svg
    assert svg.count('stroke="#000" stroke-width="2"') == 2  # the front: none and int8 only


def test_page_lists_variants_failures_and_pruned_reasons_without_network():
    vs = [
        variant("none", 2.0, 0.9, 9000),
        variant("int16x8", 140.0, 0.9, 2800, pruned="slower than float32"),
        VariantResult(
            recipe="dynamic", path=None, ok=False, error="boom", gates_passed=False, failures=["boom"]
        ),
    ]
    report = PipelineReport(
        model_id="m",
        version="1.0.0",
        source="m.keras",
        output_dir="out",
        objective="latency",
        selection_threads=2,
        variants=vs,
        chosen="none",
        gates={"min_agreement": 0.9},
    )
    html = render_pipeline_html(report)
    assert "slower than float32" in html and "boom" in html and "int16x8 <span" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_the_device_selection_is_a_field_of_the_report_and_rendered_with_it():
    from liteship.pipeline.device_select import DeviceLatency, DeviceSelection

    sel = DeviceSelection(
        job_id="job-1",
        chosen="int8",
        workstation_chosen="none",
        basis="device",
        fallback=False,
        message="selected int8 on the median device p50 of 1 device(s).",
        variants=[DeviceLatency("int8", 0.8, 1.5, devices={"pi-1": 1.5}), DeviceLatency("none", 2.0, 3.0)],
    )
    base = dict(
        model_id="m",
        version="1.0.0",
        source="m.keras",
        output_dir="out",
        objective="latency",
        selection_threads=1,
        variants=[variant("none", 2.0, 0.9, 9000), variant("int8", 0.8, 0.89, 2500)],
        chosen="int8",
    )
    page = render_pipeline_html(PipelineReport(**base, device_selection=sel))
    assert page.count('id="device-selection"') == 1 and "pi-1 p50 ms" in page
    assert page.index('id="device-selection"') < page.index("</body>")
    assert PipelineReport(**base, device_selection=sel).to_dict()["device_selection"]["job_id"] == "job-1"
    assert 'id="device-selection"' not in render_pipeline_html(PipelineReport(**base))


def test_device_validation_and_release_variants_are_fields_rendered_once():
    from liteship.pipeline.device_gate import DeviceGate, GroupVerdict
    from liteship.pipeline.report import ReleaseVariant

    gate = DeviceGate(
        "job-v",
        {"min_agreement": 0.9},
        [
            GroupVerdict(
                "aarch64+neon", ["pi-1"], {"none": True, "int8": True}, {"none": True, "int8": False},
                {"int8": ["on aarch64+neon: top-1 agreement 0.42 < min_agreement 0.9"]}, "none",
                {"int8": {"top1_min": 0.42, "accuracy_min": 0.4, "sqnr_db_min": 3.2}},
            )
        ],
        message="validated on 1 hardware group(s): aarch64+neon → none",
    )  # fmt: skip
    plan = [
        ReleaseVariant("int8", "int8", True, package={"path": "out/m-1.0.0.int8.lsp"}),
        ReleaseVariant("float32", "none", False, ["aarch64+neon"], [{"machine": ["aarch64"], "isa": ["neon"]}],
                       package={"path": "out/m-1.0.0.float32.lsp"}),
    ]  # fmt: skip
    base = dict(
        model_id="m",
        version="1.0.0",
        source="m.keras",
        output_dir="out",
        objective="latency",
        selection_threads=1,
        variants=[
            variant("none", 2.0, 0.9, 9000, agreement_top1=1.0),
            variant("int8", 0.8, 0.89, 2500, agreement_top1=0.99),
        ],
        chosen="int8",
    )
    report = PipelineReport(
        **base, device_validation=gate, group_choices={"aarch64+neon": "none"}, release_variants=plan
    )
    page = render_pipeline_html(report)
    assert page.count('id="device-validation-gate"') == 1 and page.count('id="release-variants"') == 1
    section = page[page.index('id="device-validation-gate"') : page.index('id="release-variants"')]
    assert "99.00%" in section and "42.00%" in section and "FAIL" in section  # workstation | device
    assert "liteship fleet publish out/m-1.0.0.int8.lsp out/m-1.0.0.float32.lsp" in page
    saved = report.to_dict()
    assert saved["device_validation"]["groups"][0]["chosen"] == "none"
    assert [v["name"] for v in saved["release_variants"]] == ["int8", "float32"]
    assert 'id="device-validation-gate"' not in render_pipeline_html(PipelineReport(**base))
