import pytest

from liteship.errors import PackageError
from liteship.package import compare_versions, parse_semver

ORDERED = [
    "0.9.9",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.2.0",
    "1.10.0",
    "2.0.0",
]


def test_precedence_follows_semver_org():
    parsed = [parse_semver(v) for v in ORDERED]
    assert parsed == sorted(reversed(parsed), key=lambda v: v._key())
    for a, b in zip(ORDERED, ORDERED[1:], strict=False):
        assert parse_semver(a) < parse_semver(b), (a, b)
        assert compare_versions(b, a) == 1 and compare_versions(a, b) == -1
    assert compare_versions("1.2.3-rc.1", "1.2.3-rc.1") == 0
    assert str(parse_semver("1.2.3-rc.1")) == "1.2.3-rc.1"


@pytest.mark.parametrize(
    "bad", ["1.0", "01.0.0", "1.0.0+build.1", "v1.0.0", "1.0.0-", "1.0.0-a..b", "", "1.0.x"]
)
def test_invalid_versions_are_refused(bad):
    with pytest.raises(PackageError, match="MAJOR.MINOR.PATCH"):
        parse_semver(bad)
