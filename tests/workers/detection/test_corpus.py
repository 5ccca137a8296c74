"""The evaluation corpus' recall bound: the best any detector can do on a shape at a false-alarm rate."""
from __future__ import annotations

from statistics import NormalDist

import pytest

from harewatch.workers.detection.corpus import STEP, WEEK, recall_bound

BAR_RATE = 0.25 * STEP / WEEK    # 0.25 false alarms a series-week of 5-minute points


def test_on_gaussian_noise_the_bound_is_the_textbook_one():
    """A 5-sigma spike on N(0, 1) noise clears a two-sided threshold at half the rate on each side with
    probability Phi(5 - z): no detector can catch more at that rate, and the oracle gets exactly that."""
    z = NormalDist().inv_cdf(1 - BAR_RATE / 2)
    textbook = NormalDist().cdf(5 - z)
    spike, dip = recall_bound("pure_noise", BAR_RATE, seeds=60, days=28, every_days=1)
    assert 0.85 < textbook < 0.9                     # the bar of 0.9 is out of reach on this shape
    assert min(spike, dip) == pytest.approx(textbook, abs=0.03)   # one side alone would reach 0.91


def test_a_bursty_series_own_bursts_hide_a_5_sigma_spike_but_not_a_dip():
    spike, dip = recall_bound("bursty_counts", BAR_RATE, seeds=16, days=28, every_days=2)
    assert spike < 0.5
    assert dip > 0.9


def test_on_a_noiseless_wave_every_spike_and_dip_can_be_caught():
    assert recall_bound("noiseless_wave", BAR_RATE, seeds=4, days=14, every_days=2) == (1.0, 1.0)
