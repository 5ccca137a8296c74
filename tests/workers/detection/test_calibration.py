"""The calibrator alone: a series' statistic ranked against its own tail."""
from __future__ import annotations

import numpy as np
import pytest

from harewatch.workers.detection import DetectorSettings
from harewatch.workers.detection import calibration as cal


def gaussian_calibrator(seed: int) -> list[float]:
    """A point calibrator after three weeks of 5-minute Gaussian noise (its upper side, as the detector feeds it)."""
    c = cal.new(cal.POINT)
    for z in np.random.default_rng(seed).normal(size=6000):
        cal.learn(c, max(float(z), 0.0), cal.POINT, 4.0)
    return c


def test_a_bounded_tail_does_not_call_what_lies_past_its_end_impossible():
    """Gaussian peaks fit a tail lighter than exponential, which ends near 5 sigmas. A 5-sigma point used to
    have probability 0 there and score 0.9999, a critical alert; it is rare, not impossible."""
    c = gaussian_calibrator(0)
    assert c[6] < -0.1                     # the fitted shape: a bounded tail
    iv = 300.0
    scores = [cal.surprise(2 * cal.tail_probability(c, z), iv) for z in (4.0, 5.0, 6.0, 8.0, 12.0)]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert DetectorSettings().threshold < scores[1] < DetectorSettings().severity_critical
    assert scores[-1] < cal.MAX_SCORE


@pytest.mark.parametrize("seed", range(4))
def test_value_at_inverts_the_tail_on_both_sides_of_its_end(seed):
    c = gaussian_calibrator(seed)
    for z in (2.5, 3.5, 4.5, 5.5, 7.0, 10.0):
        p = cal.tail_probability(c, z)
        assert p > 0
        assert cal.value_at(c, p) == pytest.approx(z, rel=1e-9)
