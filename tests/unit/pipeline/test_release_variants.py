"""Issue 24.1: when the hardware groups chose different variants, the pipeline writes one release
variant per chosen variant, the workstation's choice the default (liteship.pipeline.ship)."""

from __future__ import annotations

from liteship.package.variants import Variant, check_set, choose
from liteship.pipeline.config import load_config
from liteship.pipeline.run import group_choices
from liteship.pipeline.ship import plan_release_variants, variant_name

AVX2 = {"machine": "x86_64", "isa": ["avx2", "fma"]}
AVX512 = {"machine": "x86_64", "isa": ["avx2", "avx512f"]}
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"]}
RISCV = {"machine": "riscv64", "isa": []}


def records(plan):
    return [Variant.from_dict({"name": v.name, "default": v.default, "when": v.when}) for v in plan]


def test_one_variant_per_choice_the_workstation_default_and_each_device_gets_its_groups_choice():
    groups = {"aarch64+neon+dotprod": "int8+mixed", "x86_64+avx2": "none", "x86_64+avx2+avx512f": "int8"}
    plan = plan_release_variants("int8", groups)
    assert [(v.name, v.recipe, v.default, v.groups) for v in plan] == [
        ("int8", "int8", True, ["x86_64+avx2+avx512f"]),
        ("int8-mixed", "int8+mixed", False, ["aarch64+neon+dotprod"]),
        ("float32", "none", False, ["x86_64+avx2"]),
    ]
    variants = records(plan)
    check_set(variants)  # distinct names, one default: what the fleet accepts
    pick = {name: choose(variants, p).name for name, p in (("avx2", AVX2), ("avx512", AVX512),
                                                             ("pi5", PI5), ("riscv", RISCV))}  # fmt: skip
    # the avx512 device also matches the avx2 condition: the more specific condition (the default's) wins
    assert pick == {"avx2": "float32", "avx512": "int8", "pi5": "int8-mixed", "riscv": "int8"}


def test_no_variants_when_the_groups_agree_or_fail():
    assert plan_release_variants("int8", {"a+neon": "none", "b+avx2": "none"}) == []
    assert plan_release_variants("int8", {"a+neon": "none", "b+avx2": None}) == []
    assert plan_release_variants(None, {"a+neon": "none", "b+avx2": "int8"}) == []
    assert plan_release_variants("int8", {}) == []


def test_variant_names_are_valid_and_distinct():
    assert variant_name("none") == "float32" and variant_name("int8+pct+eq") == "int8-pct-eq"
    plan = plan_release_variants("int8+eq", {"a": "int8-eq", "b": "int8+eq", "c": "none"})
    assert sorted(v.name for v in plan) == ["float32", "int8-eq", "int8-eq-2"]
    check_set(records(plan))


def test_group_choices_prefer_the_device_validation():
    from liteship.pipeline.device_gate import DeviceGate, GroupVerdict
    from liteship.pipeline.device_select import DeviceSelection, GroupChoice

    sel = DeviceSelection(
        job_id="b", chosen="int8", workstation_chosen="int8", basis="device", fallback=False, message="",
        variants=[], groups=[GroupChoice("x86_64+avx2", ["d1"], "int8", {}),
                             GroupChoice("aarch64+neon", ["d2"], "int8", {})],
    )  # fmt: skip
    gate = DeviceGate("v", {}, [GroupVerdict("aarch64+neon", ["d2"], {}, {}, {}, "none")])
    assert group_choices(sel, gate) == {"aarch64+neon": "none", "x86_64+avx2": "int8"}
    assert group_choices(sel, DeviceGate("v", {}, [], fallback=True)) == {
        "aarch64+neon": "int8",
        "x86_64+avx2": "int8",
    }
    assert group_choices(None, None) == {}


def test_validation_devices_follow_bench_devices_unless_given():
    base = {"source": "m.keras", "model_id": "m", "calibration": {"data": "c.npz"}}
    cfg = load_config({**base, "validation": {"data": "v.npz"}, "bench": {"devices": ["pi-1"]}})
    assert cfg.validation_devices == ["pi-1"]
    cfg = load_config(
        {**base, "validation": {"data": "v.npz", "devices": []}, "bench": {"devices": ["pi-1"]}}
    )
    assert cfg.validation_devices == []
    cfg = load_config({**base, "validation": {"data": "v.npz", "devices": ["pi-2"]}})
    assert cfg.validation_devices == ["pi-2"] and cfg.bench.devices == []
