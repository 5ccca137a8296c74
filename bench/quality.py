"""Detection quality on shapes the simulator never makes (workers/detection/corpus.py).

    python -m bench.quality [--seeds 4] [--days 28] [--sensitivity medium] [--shapes a,b] [--every-days 3]

Per shape, with the shipped defaults (periods inferred, sensitivity medium):
- false onsets per series-week on anomaly-free series, after a 3-day learning period;
- calibration: the fraction of anomaly-free points at or above the alert threshold, beside the
  rate the sensitivity promises (one alert per series-month at medium);
- recall of injected spikes, dips and level shifts of 5 robust sigmas within 5 points, and the
  median delay in points. One is injected every ``--every-days`` (3: ten times the false-alarm rate
  medium promises, so the anomalies themselves teach the series' tail something; 8 is closer to a
  series that is mostly normal);
- "again": the share of injected level shifts that raised a second alert when they were undone (half a
  day later): the series going back to where it was is the end of the incident, not a new one;
- "bound": the best recall of the same spikes and dips that any detector catching both could have at the
  false-alarm bar (BAR_FALSE_PER_WEEK), knowing the pattern and the noise exactly (corpus.recall_bound).
  Where it is below 0.9, a 5-sigma spike is not rare enough on that shape for any detector to catch nine
  in ten at that rate: on Gaussian noise each side's threshold is 3.84 sigmas, and 5 sigmas plus the
  point's own noise clears it 88% of the time; a bursty series' own bursts are larger than 5 robust
  sigmas.

Each figure is an estimate from a few series: beside false onsets, their 95% interval, and at the end, which
shapes miss issue #13's bars beyond that noise and which are within it. The intervals resample whole series
(a series that alerts more than its siblings widens them) and add each count's own noise (see
:func:`interval`).
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from harewatch.workers.detection import IMPLEMENTATION, Detector, DetectorSettings
from harewatch.workers.detection.backtest import run_series
from harewatch.workers.detection.calibration import sensitivity_threshold, target_rate
from harewatch.workers.detection.corpus import (DAY, INJECT_EVERY_DAYS, SHAPES, SHIFT_LASTS, STEP, WEEK, clean,
                                                injected, recall_bound, step_of)

WARMUP_DAYS = 3.0
TOLERANCE = 5
BAR_FALSE_PER_WEEK = 0.25   # issue #13's bars: false onsets on anomaly-free shapes ...
BAR_RECALL = 0.9            # ... and recall of each kind of injected anomaly
KINDS = ("spike", "dip", "level_shift")
RESAMPLES = 2000


def interval(num: np.ndarray, den: np.ndarray, share: bool = False, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` interval of sum(num) / sum(den) over the seeds (one element each): the seeds resampled
    with replacement (a series that alerts more than its siblings widens it), then the count's own noise in
    each resample (Jeffreys: a rate's count as Gamma(k + 1/2), a share as Beta(k + 1/2, n - k + 1/2)), so
    four seeds of one alert each do not make an interval of width zero. Deterministic."""
    if not len(den) or den.sum() <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(den), size=(RESAMPLES, len(den)))
    n, d = num[pick].sum(axis=1), den[pick].sum(axis=1)
    n, d = n[d > 0], d[d > 0]
    ratio = rng.beta(n + 0.5, d - n + 0.5) if share else rng.gamma(n + 0.5) / d
    a = (1.0 - level) / 2
    return float(np.quantile(ratio, a)), float(np.quantile(ratio, 1.0 - a))


def detector(sensitivity: str) -> Detector:
    return Detector(DetectorSettings(threshold=sensitivity_threshold(sensitivity)))


def evaluate_shape(shape: str, seeds: int, days: float, sensitivity: str,
                   every_days: float = INJECT_EVERY_DAYS) -> dict[str, Any]:
    det = detector(sensitivity)
    thr = det.s.threshold
    above = counted = 0.0
    expected_rate = []
    per_seed = np.zeros((seeds, 2 + 2 * len(KINDS)))   # onsets, weeks, then caught and injected per kind
    again = [0, 0]
    delays: list[int] = []
    points = 0
    for seed in range(seeds):
        s = clean(shape, seed, days)
        res = run_series(det, s.ts.tolist(), s.x.tolist())
        points += len(res)
        live = s.ts >= s.ts[0] + WARMUP_DAYS * DAY
        per_seed[seed, :2] = (sum(1 for r, ok in zip(res, live) if ok and r.onset),
                              (s.ts[-1] - s.ts[0] - WARMUP_DAYS * DAY) / WEEK)
        above += sum(1 for r, ok in zip(res, live) if ok and r.surprise >= thr)
        counted += int(live.sum())
        expected_rate.append(target_rate(thr, s.interval))
        s = injected(shape, seed, days, every_days=every_days)
        res = run_series(det, s.ts.tolist(), s.x.tolist())
        points += len(res)
        for i, kind, _ in s.labels:
            col = 2 + 2 * KINDS.index(kind)
            per_seed[seed, col + 1] += 1
            found = [j - i for j in range(i, min(i + TOLERANCE + 1, len(res))) if res[j].anomaly]
            if found:
                per_seed[seed, col] += 1
                delays.append(found[0])
            if kind == "level_shift":
                end = int(np.searchsorted(s.ts, s.ts[i] + SHIFT_LASTS))
                again[1] += 1
                again[0] += any(r.onset for r in res[end:end + TOLERANCE + 1])
    total = per_seed.sum(axis=0)
    return {"false_per_week": total[0] / total[1] if total[1] else float("nan"),
            "above": above / counted if counted else float("nan"),
            "target": float(np.mean(expected_rate)),
            **{k: total[2 + 2 * i] / total[3 + 2 * i] if total[3 + 2 * i] else float("nan")
               for i, k in enumerate(KINDS)},
            "delay": float(np.median(delays)) if delays else float("nan"), "points": points,
            "again": again[0] / again[1] if again[1] else float("nan"),
            "false_interval": interval(per_seed[:, 0], per_seed[:, 1]),
            **{f"{k}_interval": interval(per_seed[:, 2 + 2 * i], per_seed[:, 3 + 2 * i], share=True)
               for i, k in enumerate(KINDS)}}


def verdicts(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Which shapes miss issue #13's bars beyond the noise of the estimate (the whole 95% interval on the wrong
    side) and which are within it (the interval holds the bar), per bar."""
    out = []
    noisy = starred = False

    def line(what: str, beyond: list[str], near: list[str]) -> str:
        nonlocal noisy, starred
        noisy = noisy or bool(near)
        starred = starred or any(n.endswith("*") for n in beyond + near)
        return f"{what} beyond the noise: {', '.join(beyond) or 'none'}; within it: {', '.join(near) or 'none'}"

    def name(shape: str, kind: str) -> str:   # marked where no detector reaches the bar either
        bound = dict(zip(KINDS, rows[shape].get("bound", ()))).get(kind, 1.0)
        return shape + ("*" if bound < BAR_RECALL else "")

    false = {s: r["false_interval"] for s, r in rows.items()}
    out.append(line(f"false onsets over {BAR_FALSE_PER_WEEK:g} a series-week",
                    [s for s, (lo, hi) in false.items() if lo > BAR_FALSE_PER_WEEK],
                    [s for s, (lo, hi) in false.items() if lo <= BAR_FALSE_PER_WEEK < hi]))
    for k in KINDS:
        lo_hi = {s: r[f"{k}_interval"] for s, r in rows.items()}
        out.append(line(f"{k.replace('_', ' ')} recall under {BAR_RECALL:g}",
                        [name(s, k) for s, (lo, hi) in lo_hi.items() if hi < BAR_RECALL],
                        [name(s, k) for s, (lo, hi) in lo_hi.items() if lo < BAR_RECALL <= hi]))
    if noisy:
        out.append("(within the noise: more --seeds narrow the interval)")
    if starred:
        out.append(f"(*: the bound is under {BAR_RECALL:g} too: at the false-alarm bar, no detector catches "
                   "nine in ten there)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--days", type=float, default=28.0)
    ap.add_argument("--sensitivity", default="medium")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--every-days", type=float, default=INJECT_EVERY_DAYS, help="days between injected anomalies")
    a = ap.parse_args()
    other = ", ".join(f"{sh} every {step_of(sh):g} s" for sh in a.shapes.split(",") if step_of(sh) != STEP)
    other = f" ({other})" if other else ""
    print(f"{a.seeds} anomaly-free and {a.seeds} injected series of {a.days:g} days per shape, 5-minute data{other}, "
          f"sensitivity {a.sensitivity}; onsets counted after {WARMUP_DAYS:g} days; recall within {TOLERANCE} points, "
          f"one anomaly injected every {a.every_days:g} days")
    print(f"{'shape':20} {'false/wk':>8} {'95%':>11} {'above thr':>10} {'target':>9} {'spike':>6} {'dip':>6} "
          f"{'shift':>6} {'delay':>6} {'again':>6}  bound: spike/dip")
    rows: dict[str, dict[str, Any]] = {}
    dt = 0.0   # seconds in the detector (the bound is not timed)
    points = 0
    worst = {"false_per_week": 0.0, "recall": 1.0, "bound": 1.0}
    for shape in a.shapes.split(","):
        t0 = time.perf_counter()
        r = rows[shape] = evaluate_shape(shape, a.seeds, a.days, a.sensitivity, a.every_days)
        dt += time.perf_counter() - t0
        b = r["bound"] = recall_bound(shape, BAR_FALSE_PER_WEEK * step_of(shape) / WEEK, a.seeds, a.days,
                                      a.every_days)
        points += int(r["points"])
        worst["false_per_week"] = max(worst["false_per_week"], r["false_per_week"])
        worst["recall"] = min(worst["recall"], r["spike"], r["dip"], r["level_shift"])
        worst["bound"] = min(worst["bound"], *b)
        lo, hi = r["false_interval"]
        print(f"{shape:20} {r['false_per_week']:8.2f} {lo:5.2f}-{hi:<5.2f} {r['above']:10.2e} {r['target']:9.2e} "
              f"{r['spike']:6.2f} {r['dip']:6.2f} {r['level_shift']:6.2f} {r['delay']:6.1f} {r['again']:6.2f}  "
              f"{b[0]:.2f}/{b[1]:.2f}")
    print(f"worst shape: {worst['false_per_week']:.2f} false onsets per series-week, recall {worst['recall']:.2f} "
          f"(of spikes and dips, the best any detector has at {BAR_FALSE_PER_WEEK:g} false alarms a series-week: "
          f"{worst['bound']:.2f}); "
          f"{points:,} points in {dt:.1f} s ({points / dt:,.0f} points/s including refits, {IMPLEMENTATION} detector)")
    for line in verdicts(rows):
        print(line)


if __name__ == "__main__":
    main()
