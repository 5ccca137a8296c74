"""An evaluation corpus of series shapes that occur in production, made here but not by the simulator.

Each shape is what real metrics look like and what a detector tuned on
Gaussian noise around a sine gets wrong: noiseless synthetic waves, square
waves, quantised integer counts, heavy-tailed bursty counts, quantised bursty
CPU, irregular sampling with gaps, a drifting phase, a weekly pattern with a
holiday, an autocorrelated sensor, a nightly job, and at 1-minute sampling
(as Prometheus scrapes) noise and a gauge scraped more often than it is
updated. :func:`clean` gives a shape without
anomalies (for false alerts and calibration); :func:`injected` the same series
with spikes, dips and level shifts of a given size in robust sigmas of the
series' own noise (for recall and delay).

Pure numpy, deterministic per (shape, seed); used by ``bench/run quality`` and
the detector's tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DAY = 86400.0
WEEK = 7 * DAY
STEP = 300.0
T0 = 1_700_006_400.0   # a UTC midnight (a Wednesday)
ON_AT, OFF_AT = 7 * 3600.0 + 300.0, 16 * 3600.0 + 3000.0   # business hours: on at 07:05, off at 16:50
JOB_AT = 2 * 3600.0 + 300.0   # a nightly job starts at 02:05, inside a 15-minute bucket


@dataclass
class Series:
    """One corpus series: times, values, the noise-free pattern, and labelled anomalies (index, type)."""

    shape: str
    ts: np.ndarray
    x: np.ndarray
    pattern: np.ndarray
    sigma: float                                   # robust sigma of the noise (x - pattern)
    labels: list[tuple[int, str, float]] = field(default_factory=list)   # (index, type, magnitude in sigmas)

    @property
    def interval(self) -> float:
        return float(np.median(np.diff(self.ts)))


def _daily(ts: np.ndarray, phase: float | np.ndarray = 0.0) -> np.ndarray:
    return np.sin(2 * np.pi * ((ts % DAY) / DAY - 0.25 + phase))


def _robust_sigma(noise: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(noise - np.median(noise))))


def step_of(shape: str) -> float:
    """The shape's sampling interval in seconds (5 minutes, unless :data:`STEPS` says otherwise)."""
    return STEPS.get(shape, STEP)


def _make(shape: str, days: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    step = step_of(shape)
    n = int(days * DAY / step)
    ts = T0 + np.arange(n) * step
    if shape == "noiseless_wave":
        p = 50 + 20 * _daily(ts)
        return ts, p.copy(), p
    if shape == "square_wave":               # business hours: it switches inside the 15-minute buckets a fit sees
        tod = ts % DAY
        p = np.where((tod >= ON_AT) & (tod < OFF_AT), 80.0, 20.0)
        return ts, p.copy(), p
    if shape == "small_noise_wave":
        p = 50 + 20 * _daily(ts)
        return ts, p + rng.normal(0, 0.5, n), p
    if shape == "flat_line":
        p = np.full(n, 12.5)
        return ts, p.copy(), p
    if shape == "pure_noise":
        p = np.full(n, 40.0)
        return ts, p + rng.normal(0, 3.0, n), p
    if shape == "integer_counts":            # requests per 5 minutes at a small site
        p = 40 + 25 * _daily(ts)
        return ts, rng.poisson(p).astype(float), p
    if shape == "bursty_counts":             # tweet volume: heavy-tailed, bursts of attention
        p = 60 + 30 * _daily(ts)
        base = rng.negative_binomial(5, 5 / (5 + p)).astype(float)
        bursts = rng.random(n) < 0.01
        base[bursts] *= rng.lognormal(0.7, 0.5, bursts.sum())
        return ts, np.round(base), p
    if shape == "quantised_cpu":             # a mostly idle VM: CPU% in steps of 0.066, short bursts
        p = np.full(n, 2.0)
        x = p + rng.gamma(2.0, 0.15, n)
        burst = rng.random(n) < 0.02
        x[burst] += rng.exponential(4.0, burst.sum())
        return ts, np.round(x / 0.066) * 0.066, p
    if shape == "irregular_sampling":        # a road sensor: uneven intervals and normal gaps
        gaps = rng.choice([STEP, STEP, STEP, 2 * STEP, 3 * STEP, 60.0 * 13], size=n,
                          p=[0.5, 0.2, 0.1, 0.1, 0.08, 0.02])
        ts = T0 + np.cumsum(gaps)
        ts = ts[ts < T0 + days * DAY]
        p = 8 + 6 * np.clip(_daily(ts), 0, None) ** 2
        return ts, np.clip(p + rng.normal(0, 0.8, len(ts)), 0, None), p
    if shape == "drifting_phase":            # a daily cycle whose timing drifts an hour a week
        drift = (ts - T0) / WEEK / 24.0
        p = 300 + 120 * _daily(ts, drift)
        return ts, p + rng.normal(0, 6.0, n), p
    if shape == "weekly_holiday":            # business traffic: weekdays high, weekends low, one holiday
        day = ((ts - T0) // DAY).astype(int)
        weekday = (day + 2) % 7            # T0 is a Wednesday
        workday = (weekday < 5) & (day != 16)   # day 16 is a Friday
        p = 100 + np.where(workday, 80.0, 15.0) * np.clip(_daily(ts), 0, None)
        return ts, p + rng.normal(0, 4.0, n), p
    if shape == "sensor_ar1":                # machine temperature: slow autocorrelated wander
        e = rng.normal(0, 0.3, n)
        w = np.zeros(n)
        for i in range(1, n):
            w[i] = 0.98 * w[i - 1] + e[i]
        p = np.full(n, 70.0)
        return ts, p + w, p
    if shape == "nightly_job":               # a backup lifts a noisy daily wave for 10 minutes from 02:05
        p = 50 + 20 * _daily(ts)
        tod = ts % DAY
        p[(tod >= JOB_AT) & (tod < JOB_AT + 600.0)] += 60.0
        return ts, p + rng.normal(0, 3.0, n), p
    if shape == "pure_noise_1min":           # pure noise, scraped every minute: its false-alarm rate is per minute
        p = np.full(n, 40.0)
        return ts, p + rng.normal(0, 3.0, n), p
    if shape == "held_gauge":                # a noisy daily wave updated every 10 minutes, scraped every minute
        p = 50 + 20 * _daily(ts)
        held = np.arange(n) // HELD_EVERY * HELD_EVERY    # the update each scrape shows
        return ts, (p + rng.normal(0, 3.0, n))[held], p[held]
    raise ValueError(f"unknown shape {shape!r}")


INJECT_EVERY_DAYS = 3.0   # days between injected anomalies (ten times the rate medium promises)
SHIFT_LASTS = DAY / 2     # an injected level shift is undone after this long

SHAPES = ("noiseless_wave", "square_wave", "small_noise_wave", "flat_line", "pure_noise", "integer_counts",
          "bursty_counts", "quantised_cpu", "irregular_sampling", "drifting_phase", "weekly_holiday", "sensor_ar1",
          "nightly_job", "pure_noise_1min", "held_gauge")
STEPS = {"pure_noise_1min": 60.0, "held_gauge": 60.0}   # shapes not sampled every STEP
HELD_EVERY = 10           # held_gauge: points per update


def clean(shape: str, seed: int = 0, days: float = 21.0) -> Series:
    """The shape with no anomaly in it."""
    rng = np.random.default_rng([SHAPES.index(shape), seed])
    ts, x, p = _make(shape, days, rng)
    noise = x - p
    if shape == "sensor_ar1":
        noise = np.diff(x)                        # the point-to-point noise, not the slow wander
    sigma = _robust_sigma(noise)
    floor = 0.01 * float(np.ptp(p)) if np.ptp(p) > 0 else 0.01 * abs(float(np.mean(p)))
    return Series(shape, ts, x, p, max(sigma, floor))


def noise(s: Series) -> tuple[np.ndarray, np.ndarray]:
    """The series' noise, as a detector that knew the shape exactly would see it, and its standard deviation
    per point: x minus the pattern (the autocorrelated sensor: the innovation of its AR(1) wander), and for
    counts the spread their distribution has at that level (Poisson, negative binomial with r = 5)."""
    r = s.x - s.pattern
    sd = np.ones_like(s.pattern)
    if s.shape == "sensor_ar1":
        r = np.r_[0.0, r[1:] - 0.98 * r[:-1]]
    elif s.shape == "integer_counts":
        sd = np.sqrt(s.pattern)
    elif s.shape == "bursty_counts":
        sd = np.sqrt(s.pattern + s.pattern ** 2 / 5)
    return r, sd


def recall_bound(shape: str, rate: float, seeds: int = 16, days: float = 21.0,
                 every_days: float = INJECT_EVERY_DAYS, normal_seeds: int = 64) -> tuple[float, float]:
    """The best (spike, dip) recall that any detector catching both could have at ``rate`` false alarms per
    point, on the series :func:`injected` makes with these arguments.

    The detector is an oracle: it knows the pattern and the noise exactly, takes its thresholds from
    ``normal_seeds`` anomaly-free series, looks at the noise as it is or standardised by its spread at that
    point, and splits the rate between the two sides so that the lower of its two recalls is highest. A
    spike or dip is one point on noise that is independent from point to point, so its value is all the
    evidence there is and nothing beats a threshold on it; where this is below a recall bar, no detector
    meets that bar at that false-alarm rate."""
    normal = [noise(clean(shape, 1000 + k, days)) for k in range(normal_seeds)]
    tests = [injected(shape, seed, days, every_days=every_days) for seed in range(seeds)]
    best = (0.0, 0.0)
    for standardised in (False, True):
        a = np.concatenate([r / sd if standardised else r for r, sd in normal])
        found: dict[str, list[float]] = {"spike": [], "dip": []}
        for s in tests:
            r, sd = noise(s)
            v = r / sd if standardised else r
            for i, kind, _ in s.labels:
                if kind in found:
                    found[kind].append(float(v[i]))
        spikes, dips = np.array(found["spike"]), np.array(found["dip"])
        if not len(spikes) or not len(dips):
            continue
        for share in np.linspace(0.02, 0.98, 49):     # of the rate spent above the pattern
            up, dn = np.quantile(a, 1.0 - share * rate), np.quantile(a, (1.0 - share) * rate)
            pair = (float(np.mean(spikes > up)), float(np.mean(dips < dn)))
            if min(pair) > min(best) or (min(pair) == min(best) and sum(pair) > sum(best)):
                best = pair
    return best


def injected(shape: str, seed: int = 0, days: float = 21.0, size: float = 5.0, warmup_days: float = 3.0,
             every_days: float = INJECT_EVERY_DAYS) -> Series:
    """The shape with spikes, dips and level shifts of ``size`` robust sigmas, one every ``every_days``
    after ``warmup_days``, in turn from the kind ``seed % 3``: across seeds each kind is met at every age
    of the series (with the same first kind everywhere, every 8 days put every spike on day 3, where the
    model is youngest, and every shift on day 19); level shifts last SHIFT_LASTS (half a day) and are
    then undone."""
    s = clean(shape, seed, days)
    rng = np.random.default_rng([SHAPES.index(shape), seed, 1])
    x = s.x.copy()
    kinds = ("spike", "dip", "level_shift")
    t = s.ts[0] + warmup_days * DAY
    k = seed % 3
    while t < s.ts[-1] - DAY:
        i = int(np.searchsorted(s.ts, t + rng.uniform(0, 0.5) * DAY))
        kind = kinds[k % 3]
        mag = size * s.sigma
        if kind in ("spike", "dip"):
            end = i + 1
            if shape == "held_gauge":       # one value: one update, held until the next
                i = i // HELD_EVERY * HELD_EVERY
                end = i + HELD_EVERY
            x[i:end] += mag if kind == "spike" else -mag
        else:
            end = int(np.searchsorted(s.ts, s.ts[i] + SHIFT_LASTS))
            x[i:end] += mag
        s.labels.append((i, kind, size))
        k += 1
        t += every_days * DAY
    s.x = x
    return s
