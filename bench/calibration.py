"""The calibrator alone: how often it fires on normal data, against the rate it promises.

    python -m bench.calibration [--series 200] [--days 28] [--sensitivity medium]

A point's tail (workers/detection/calibration.py) is fed what the detector feeds it: one side of a
stream of standardised deviations (the value above zero, zero below), each value capped at the alert
threshold of the moment, on 5-minute data. The streams are independent draws from known
distributions, so nothing here is the model's error or an anomaly: a value past the threshold is a
false alarm, and the promise is the threshold's tail probability (half of medium's once a month per
side). Per distribution, with the shape of its tail (the generalised Pareto shape a peaks-over-
threshold fit converges to), the ratio of false alarms to the promise on days 3 to 10 (the tail has
seen up to 60 peaks) and after day 10 (it forgets over MIN_MEMORY points, about 60 peaks), and the
median threshold against the true quantile.

A threshold estimated from a few dozen peaks scatters around the true quantile. Set too low, it adds
more alarms than it removes when set as much too high (a tail's probability is convex in the value), so
the scatter alone makes the realised rate exceed the promise, and the heavier the tail, the more: on a
Pareto tail of shape 0.3 fitted from 60 exact peaks, by maximum likelihood or by moments alike, about
three times. This is the false-alarm rate a series with that noise and a perfect model would see;
bench.quality's shapes add the model's error.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
from scipy import stats

from bench.quality import WARMUP_DAYS
from harewatch.workers.detection import IMPLEMENTATION, DetectorSettings
from harewatch.workers.detection import calibration as cal
from harewatch.workers.detection.calibration import sensitivity_threshold, target_rate
from harewatch.workers.detection.corpus import DAY, STEP

YOUNG_DAYS = 10.0   # the tail has seen up to about 60 peaks by then

Draw = Callable[[np.random.Generator, int], np.ndarray]

#: name -> (draws of the standardised deviation, its upper quantile function, the tail's shape)
DISTRIBUTIONS: dict[str, tuple[Draw, Callable[[float], float], float]] = {
    "gaussian": (lambda g, n: g.normal(size=n), lambda q: float(stats.norm.isf(q)), 0.0),
    "laplace": (lambda g, n: g.laplace(scale=2 ** -0.5, size=n),
                lambda q: float(stats.laplace.isf(q, scale=2 ** -0.5)), 0.0),
    "student t, 6 dof": (lambda g, n: g.standard_t(6, size=n) * (4 / 6) ** 0.5,
                         lambda q: float(stats.t.isf(q, 6) * (4 / 6) ** 0.5), 1 / 6),
    "student t, 3 dof": (lambda g, n: g.standard_t(3, size=n) / 3 ** 0.5,
                         lambda q: float(stats.t.isf(q, 3) / 3 ** 0.5), 1 / 3),
}


def run(draw: Draw, series: int, days: float, p: float) -> tuple[int, int, int, int, list[float]]:
    """False alarms and points, young and settled, over ``series`` streams; the final thresholds."""
    n = int(days * DAY / STEP)
    young, warm = int(YOUNG_DAYS * DAY / STEP), int(WARMUP_DAYS * DAY / STEP)
    fa_young = fa_old = 0
    thresholds = []
    for k in range(series):
        z = draw(np.random.default_rng([0, k]), n)
        c = cal.new(cal.POINT)
        for i in range(n):
            x = float(z[i])
            x = x if x > 0.0 else 0.0
            thr = cal.value_at(c, p)
            if x > thr and i >= warm:
                if i < young:
                    fa_young += 1
                else:
                    fa_old += 1
            cal.learn(c, x, cal.POINT, cal.learn_cap(c, p, thr))
        thresholds.append(cal.value_at(c, p))
    return fa_young, series * (young - warm), fa_old, series * (n - young), thresholds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--days", type=float, default=28.0)
    ap.add_argument("--sensitivity", default="medium")
    a = ap.parse_args()
    p = 0.5 * target_rate(sensitivity_threshold(a.sensitivity), STEP)
    print(f"{a.series} independent streams of {a.days:g} days per distribution, 5-minute points, one side's tail "
          f"at sensitivity {a.sensitivity} (promise: {p:.2e} of points, one in {1 / p:,.0f}); false alarms over "
          f"the promise on days {WARMUP_DAYS:g}-{YOUNG_DAYS:g} and after day {YOUNG_DAYS:g}")
    print(f"{'distribution':18} {'tail shape':>10} {'days 3-10':>10} {'after':>8} {'threshold':>10} {'true':>6}")
    t0 = time.perf_counter()
    points = 0
    for name, (draw, isf, shape) in DISTRIBUTIONS.items():
        fy, ny, fo, no, thr = run(draw, a.series, a.days, p)
        points += a.series * int(a.days * DAY / STEP)
        print(f"{name:18} {shape:10.2f} {fy / (ny * p):10.2f} {fo / (no * p):8.2f} {float(np.median(thr)):10.2f} "
              f"{isf(p):6.2f}")
    dt = time.perf_counter() - t0
    print(f"{points:,} values in {dt:.1f} s ({IMPLEMENTATION} calibrator; threshold: the median over the streams "
          f"at the end, true: the distribution's own; medium's threshold {DetectorSettings().threshold:g})")


if __name__ == "__main__":
    main()
