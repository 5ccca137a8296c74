"""Choosing the fit resolution and inferring seasonal periods from history."""
from __future__ import annotations

import math

import numpy as np

DAY, WEEK = 86400.0, 7 * 86400.0
AUTO_CANDIDATES = (DAY, WEEK)
MAX_BUCKETS_MIN_PERIOD = 288   # fit resolution: at most this many buckets per cycle of the shortest period
MAX_BUCKETS_MAX_PERIOD = 672   # ... and of the longest (keeps MSTL fits in milliseconds)


def bucket_seconds(interval: float, periods: tuple[float, ...]) -> float:
    """Width of a fit bucket: the sampling interval, or coarser so fits stay cheap.

    Chosen so every period is a whole number of buckets.
    """
    if not periods:
        return interval
    pmin, pmax = min(periods), max(periods)
    target = max(interval, pmin / MAX_BUCKETS_MIN_PERIOD, pmax / MAX_BUCKETS_MAX_PERIOD)
    n = max(1, round(pmin / target))
    return pmin / n


def fill_gaps(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaNs (edges take the nearest value)."""
    mask = np.isnan(x)
    if not mask.any():
        return x
    idx = np.arange(len(x))
    good = ~mask
    out = x.copy()
    out[mask] = np.interp(idx[mask], idx[good], x[good])
    return out


def acf_at(x: np.ndarray, lag: int) -> float:
    """Autocorrelation of ``x`` at ``lag`` (0 when undefined)."""
    if lag <= 0 or lag >= len(x) - 2:
        return 0.0
    a, b = x[:-lag], x[lag:]
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def too_short_for(period: float, n: int, bucket: float) -> bool:
    """Whether ``n`` buckets are too few to prove a cycle of ``period``: two cycles of it are needed."""
    return n < 2 * int(round(period / bucket)) + 4


def infer_periods(history: np.ndarray, bucket: float, candidates: tuple[float, ...] = AUTO_CANDIDATES,
                  min_acf: float = 0.3, keep: tuple[float, ...] = ()) -> tuple[float, ...]:
    """Periods (seconds) among ``candidates`` that the history shows, () when none.

    A period in ``keep`` (the model's) stays on half the evidence it took to find it: a weekly cycle
    blurred by a stormy week or a fast-growing series is still the series' cycle, and dropping it for a
    few days alerted on every weekend in between.

    Needs at least two cycles of a candidate to consider it; the series is
    detrended with a one-cycle moving average first so trends do not pass for
    seasonality, and a longer period is judged on what the shorter ones found
    do not explain (a weekly pattern on top of a daily one, not the daily one
    seen again at a week's lag).
    """
    x = fill_gaps(history)
    found: list[float] = []
    for p in sorted(candidates):
        lag = int(round(p / bucket))
        if lag < 4 or too_short_for(p, len(x), bucket):   # a weekly pattern is known after two weeks
            continue
        # what the shorter periods found so far do not explain: their mean shape per phase removed
        rest = x.copy()
        for q in found:
            qlag = int(round(q / bucket))
            phase = np.arange(len(rest)) % qlag
            means = np.bincount(phase, weights=rest, minlength=qlag) / np.maximum(np.bincount(phase, minlength=qlag), 1)
            rest = rest - means[phase]
        # the one-cycle moving average runs to the ends (a shorter window there), so the correlation a
        # cycle apart rests on every pair: trimmed to full windows, two cycles of history left four pairs
        # at a cycle's lag, and pure noise passed for a weekly cycle in one series of three
        kernel = np.ones(lag)
        trend = np.convolve(rest, kernel, mode="same") / np.convolve(np.ones(len(rest)), kernel, mode="same")
        core = rest - trend
        r = acf_at(core, lag)
        # a cycle is in phase after a period and out of phase after half of one;
        # trends and random walks are neither
        contrast = r - acf_at(core, lag // 2)
        need = 0.5 if p in keep else 1.0
        if r >= need * min_acf and contrast >= need * 0.3:
            found.append(p)
    return tuple(found)


def week_before_provable(history: np.ndarray, bucket: float, ratio: float = 0.5) -> bool:
    """Whether, with one to two weeks of history (too little for :func:`infer_periods` to prove a weekly
    cycle), last week explains the newest days far better than yesterday does.

    Business traffic is the case: weekends look nothing like Fridays, so a daily model alerts every
    Saturday and Monday until a second week proves the weekly cycle. Compared over every bucket that
    has both a day and a week before it, on the 90th percentile of the absolute errors (the weekend
    transitions are a quarter of the days, a median would not see them); a series without a weekly
    pattern has last week's noise on top of yesterday's and never wins by ``ratio``.
    """
    day, week = int(round(DAY / bucket)), int(round(WEEK / bucket))
    n = len(history)
    if day < 4 or n < week + day or not too_short_for(WEEK, n, bucket):
        return False
    x = history
    now = x[week:]
    by_week = np.abs(now - x[:-week])
    by_day = np.abs(now - x[week - day:n - day])
    ok = ~(np.isnan(by_week) | np.isnan(by_day))
    if ok.sum() < day:
        return False
    e_week = float(np.quantile(by_week[ok], 0.9))
    e_day = float(np.quantile(by_day[ok], 0.9))
    return e_day > 0 and e_week < ratio * e_day
