"""PSI and drift levels on synthetic histograms."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.fleet.drift import drift_point, psi, resample


def hist(rng, a, b, n=5000):
    return np.histogram(rng.beta(a, b, n), bins=20, range=(0, 1))[0].tolist()


def test_psi_known_value():
    # p=(.5,.5) vs q=(.25,.75): (.25)ln2 + (-.25)ln(2/3)
    assert psi([50, 50], [25, 75]) == pytest.approx(0.25 * np.log(2) - 0.25 * np.log(2 / 3))
    assert psi([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="bins"):
        psi([1, 2], [1, 2, 3])


def test_levels():
    rng = np.random.default_rng(0)
    ref = hist(rng, 8, 2, 100_000)
    assert drift_point(0, hist(rng, 8, 2), ref).level == "ok"
    assert drift_point(0, hist(rng, 6, 2), ref).level == "warn"
    alert = drift_point(0, hist(rng, 3, 2), ref)
    assert alert.level == "alert" and alert.psi >= 0.2
    small = drift_point(0, hist(rng, 3, 2, n=499), ref)
    assert small.level == "insufficient" and small.psi is None  # under 500 predictions: no verdict


def test_reference_with_other_bins_is_resampled():
    rng = np.random.default_rng(1)
    values = rng.beta(8, 2, 50_000)
    ref10, edges10 = np.histogram(values, bins=10, range=(0, 1))
    live = np.histogram(rng.beta(8, 2, 5000), bins=20, range=(0, 1))[0].tolist()
    point = drift_point(0, live, ref10.tolist(), edges10.tolist())
    assert point.level == "ok" and point.psi < 0.1
    assert sum(resample([1, 1], [0.5, 0.75, 1.0], 4)) == pytest.approx(2)
    assert resample([4], [0.0, 1.0], 4) == [1, 1, 1, 1]
