"""The agent installs a variant package only as the variant the server named, and only on hardware its
signed conditions select (issue 24); a refused variant leaves the current model in place."""

from __future__ import annotations

import pytest
from agent_test_helpers import build

from liteship.agent.profile import PROFILE_ENV, device_profile, profile_override
from liteship.agent.store import Store
from liteship.errors import AgentError, UpdateRefused
from liteship.package import Variant, parse_when

PI4 = {"machine": "aarch64", "isa": ["neon"]}
PI5 = {"machine": "aarch64", "isa": ["neon", "dotprod"]}
DOT = Variant("int8-dotprod", when=(parse_when("machine=aarch64,isa=dotprod"),))
FLOAT = Variant("float", default=True)


@pytest.fixture(scope="module")
def variant_packages(tflite_float, keys, golden, tmp_path_factory):
    out = tmp_path_factory.mktemp("variant-lsp")
    good = tflite_float.read_bytes()
    return {
        v.name: build(good, out / v.name, "1.1.0", keys.private_path, golden, variant=v) for v in (FLOAT, DOT)
    }


@pytest.fixture
def store(tmp_path, keys, packages):
    s = Store(tmp_path / "state", keys.public_path)
    s.install(packages["1.0.0"], expected_version="1.0.0")
    return s


def test_the_named_variant_for_this_hardware_installs(store, variant_packages):
    m = store.install(
        variant_packages["int8-dotprod"], expected_version="1.1.0", variant="int8-dotprod", profile=PI5
    )
    assert m.variant_record.name == "int8-dotprod" and store.current_version() == "1.1.0"


@pytest.mark.parametrize(
    ("package", "assigned", "profile", "message"),
    [
        ("int8-dotprod", "float", PI5, "assigned variant 'float'.*package is variant 'int8-dotprod'"),
        ("float", "int8-dotprod", PI5, "assigned variant 'int8-dotprod'.*package is variant 'float'"),
        ("int8-dotprod", "int8-dotprod", PI4, "profile does not match"),
    ],
)
def test_another_variant_or_one_for_other_hardware_is_refused(
    store, variant_packages, package, assigned, profile, message
):
    with pytest.raises(UpdateRefused, match=message) as e:
        store.install(variant_packages[package], expected_version="1.1.0", variant=assigned, profile=profile)
    assert e.value.reason == "variant"
    assert store.current_version() == "1.0.0"  # the current model stays


def test_a_plain_package_is_not_a_variant(store, packages):
    with pytest.raises(UpdateRefused, match="not a variant"):
        store.install(packages["1.1.0"], expected_version="1.1.0", variant="int8-dotprod")
    assert store.current_version() == "1.0.0"


def test_the_default_variant_installs_on_any_hardware(store, variant_packages):
    store.install(variant_packages["float"], expected_version="1.1.0", variant="float", profile=PI5)
    assert store.current_version() == "1.1.0"


def test_the_profile_test_hook(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, '{"machine": "aarch64", "isa": ["neon", "dotprod"]}')
    p = device_profile()
    assert p["machine"] == "aarch64" and p["isa"] == ["neon", "dotprod"] and "python" in p
    monkeypatch.setenv(PROFILE_ENV, '{"machine": {"nested": 1}}')
    with pytest.raises(AgentError, match="flat JSON object"):
        profile_override()
