"""Variant conditions and the choice of a release's variant for a device profile (issue 24)."""

from __future__ import annotations

import pytest

from liteship.errors import PackageError
from liteship.package.variants import Condition, Variant, check_set, choose, condition_of_group, parse_when

PI4 = {"machine": "aarch64", "isa": ["neon"], "litert": "1.4.0", "accelerators": ["cpu"]}
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"], "litert": "1.4.0", "accelerators": ["cpu"]}
VNNI = {"machine": "x86_64", "isa": ["avx2", "avx512_vnni"], "litert": "2.0.1", "accelerators": ["cpu"]}
GPU = {"machine": "aarch64", "isa": ["neon"], "litert": "1.4.0", "accelerators": ["cpu", "gpu"]}

FLOAT = Variant("float", default=True)
INT8_DOT = Variant("int8-dotprod", when=(parse_when("machine=arm64,isa=dotprod"),))
INT8_VNNI = Variant("int8-vnni", when=(parse_when("machine=x86_64,isa=avx512_vnni"),))
GPU_V = Variant("fp16-gpu", when=(parse_when("accelerator=gpu,litert_min=1.2,litert_below=3"),))
ALL = [FLOAT, INT8_DOT, INT8_VNNI, GPU_V]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (PI4, "float"),
        (PI5, "int8-dotprod"),
        (VNNI, "int8-vnni"),
        (GPU, "fp16-gpu"),
        ({}, "float"),
        (None, "float"),
    ],
)
def test_each_profile_gets_its_variant_else_the_default(profile, expected):
    assert choose(ALL, profile).name == expected


def test_the_most_specific_matching_condition_wins():
    broad = Variant("any-arm", when=(Condition(machine=("aarch64",)),))
    assert choose([FLOAT, broad, INT8_DOT], PI5).name == "int8-dotprod"
    assert choose([FLOAT, broad, INT8_DOT], PI4).name == "any-arm"


def test_litert_range_is_min_inclusive_below_exclusive():
    c = parse_when("litert_min=1.4,litert_below=2.0")
    assert c.holds({"litert": "1.4.0"}) and c.holds({"litert": "1.99"})
    assert not c.holds({"litert": "2.0.0"}) and not c.holds({"litert": "1.3.9"}) and not c.holds({})


def test_round_trip_and_group_names():
    assert Variant.from_dict(INT8_DOT.to_dict()) == INT8_DOT
    assert condition_of_group("x86_64+avx512_vnni").holds(VNNI)
    assert not condition_of_group("x86_64+avx512_vnni").holds(PI5)
    assert condition_of_group("unknown").holds({})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "Bad Name", "default": True}, "not valid"),
        ({"name": "x", "default": False, "when": []}, "no device would ever run it"),
        ({"name": "x", "when": [{"cpu": "a76"}]}, "unknown keys"),
        ({"name": "x", "when": [{"litert_min": "new"}]}, "must be a version"),
        ({"name": "x", "default": "yes"}, "true or false"),
        ("x", "must be an object"),
    ],
)
def test_bad_variants_are_refused_with_a_reason(raw, message):
    with pytest.raises(PackageError, match=message):
        Variant.from_dict(raw)


def test_parse_when_errors_name_the_flag():
    with pytest.raises(PackageError, match="not KEY=VALUE"):
        parse_when("machine")
    with pytest.raises(PackageError, match="unknown key 'cpu'"):
        parse_when("cpu=a76")


def test_a_release_needs_one_default_and_distinct_names():
    check_set([FLOAT, INT8_DOT])
    with pytest.raises(PackageError, match="exactly one default"):
        check_set([INT8_DOT, INT8_VNNI])
    with pytest.raises(PackageError, match="more than once"):
        check_set([FLOAT, INT8_DOT, INT8_DOT])
