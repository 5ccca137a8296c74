"""Realistic labelled metric series: the demo's data source and the detector's test bench.

Kinds of series (each with its own noise): web traffic (Poisson counts with
daily and weekly cycles and a trend), latency (log-normal), CPU (AR(1) noise,
bounded 0-100), a sensor (smooth daily cycle), orders (weekly shape), a
near-constant integer gauge, and a non-seasonal random walk; some with gaps.
Anomalies of every DESIGN §2 type are injected at random after a warm-up and
written out as ground truth (type, start, end, magnitude in noise sigmas).

>>> sim = Simulator(n_series=3, interval=60, seed=1)
>>> ts, values, truth = sim.generate_series(sim.specs[0], start=0.0, n_points=100)
>>> len(ts) == len(values) <= 100
True
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from harewatch.messages import AnomalyType, Reading, series_name
from harewatch.times import iso

ANOMALY_TYPES = tuple(t.value for t in AnomalyType)
KINDS = ("traffic", "latency", "cpu", "sensor", "orders", "gauge", "random_walk")
_METRIC = {"traffic": "http_requests", "latency": "http_latency_ms", "cpu": "cpu_util", "sensor": "temperature_c",
           "orders": "orders_per_min", "gauge": "worker_pool_size", "random_walk": "disk_used_gb"}
_TEAMS = ("payments", "search", "platform", "checkout")


@dataclass
class SeriesSpec:
    """One simulated series: what it is and the knobs of its shape."""

    kind: str
    metric: str
    labels: dict[str, str]
    base: float
    daily: float
    weekly: float
    trend: float        # relative growth per week
    noise: float        # noise scale parameter of the kind
    phase_h: float      # hour of the daily trough
    gaps: bool
    seed: int

    @property
    def name(self) -> str:
        return series_name(self.metric, self.labels)


@dataclass
class Truth:
    """One injected anomaly."""

    series: str
    type: str
    start: float
    end: float
    magnitude: float

    def to_dict(self) -> dict[str, Any]:
        return {"series": self.series, "type": self.type, "start": iso(self.start), "end": iso(self.end),
                "magnitude": round(self.magnitude, 2)}


def _daily_shape(hours: np.ndarray, trough_h: float) -> np.ndarray:
    """Roughly -1 at night, +1 in the afternoon: two harmonics, like real traffic."""
    ang = 2 * np.pi * (hours - trough_h) / 24.0
    return -0.8 * np.cos(ang) - 0.25 * np.cos(2 * ang + 0.6)


def _weekly_shape(days: np.ndarray) -> np.ndarray:
    """0 on weekdays, -1 at the weekend, with twelve-hour ramps (epoch day 0 is a Thursday)."""
    d = (days + 3 - 0.25) % 7          # 0 = Monday 06:00
    return -(np.clip((d - 4.5) / 0.5, 0, 1) - np.clip((d - 6.5) / 0.5, 0, 1))


@dataclass
class Simulator:
    """A fleet of simulated series on one sampling grid."""

    n_series: int = 20
    interval: float = 60.0
    seed: int = 0
    anomaly_rate: float = 0.0          # expected anomalies per point
    warmup: float = 3 * 86400.0        # no anomalies in the first warmup seconds of a generated stretch
    anomalies_from: float | None = None  # ... or, when set, before this timestamp (live chunks)
    kinds: tuple[str, ...] = KINDS
    specs: list[SeriesSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        for i in range(self.n_series):
            kind = self.kinds[i % len(self.kinds)]
            host = f"{'web' if kind in ('traffic', 'latency', 'cpu') else 'node'}-{i:03d}"
            labels = {"host": host, "team": _TEAMS[i % len(_TEAMS)]}
            if kind == "sensor":
                labels = {"site": f"plant-{i % 3}", "sensor": f"t{i:03d}", "team": "facilities"}
            p = dict(traffic=(rng.uniform(50, 2000), 0.6, 0.3, rng.uniform(-0.02, 0.05), 1.0),
                     latency=(rng.uniform(80, 300), 0.3, 0.1, 0.0, rng.uniform(0.05, 0.12)),
                     cpu=(rng.uniform(20, 50), 0.4, 0.1, 0.0, rng.uniform(1.5, 4.0)),
                     sensor=(rng.uniform(15, 25), 0.2, 0.0, 0.0, rng.uniform(0.1, 0.4)),
                     orders=(rng.uniform(20, 200), 0.7, 0.5, 0.01, 1.0),
                     gauge=(float(rng.integers(4, 16)), 0.0, 0.0, 0.0, 0.02),
                     random_walk=(rng.uniform(100, 500), 0.0, 0.0, 0.0, rng.uniform(0.05, 0.3)))[kind]
            self.specs.append(SeriesSpec(kind, _METRIC[kind], labels, p[0], p[1], p[2], p[3], p[4],
                                         float(rng.uniform(2, 6)), bool(rng.random() < 0.2),
                                         int(rng.integers(0, 2**31))))

    # -- one series ------------------------------------------------------------
    def clean(self, spec: SeriesSpec, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected value and local noise sigma at times ``t`` (no noise, no anomalies)."""
        hours = (t / 3600.0) % 24
        days = t / 86400.0
        shape = 1 + spec.daily * _daily_shape(hours, spec.phase_h) + spec.weekly * _weekly_shape(days)
        growth = 1 + spec.trend * (t - t[0]) / (7 * 86400.0) if len(t) else 1
        mean = np.maximum(spec.base * shape * growth, 0.5)
        if spec.kind in ("traffic", "orders"):
            sigma = np.sqrt(mean)
        elif spec.kind == "latency":
            sigma = mean * spec.noise
        elif spec.kind == "gauge":
            sigma = np.full_like(mean, 0.5)
        else:
            sigma = np.full_like(mean, spec.noise)
        return mean, sigma

    def _noise(self, spec: SeriesSpec, mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(mean)
        k = spec.kind
        if k in ("traffic", "orders"):
            return rng.poisson(mean).astype(float)
        if k == "latency":
            return mean * np.exp(rng.normal(0, spec.noise, n) - spec.noise ** 2 / 2)
        if k == "cpu":
            e = rng.normal(0, spec.noise * math.sqrt(1 - 0.5 ** 2), n)
            ar = np.empty(n)
            acc = 0.0
            for i in range(n):
                acc = 0.5 * acc + e[i]
                ar[i] = acc
            return np.clip(mean + ar, 0, 100)
        if k == "gauge":
            return mean.round() + (rng.random(n) < spec.noise).astype(float)
        if k == "random_walk":
            walk = np.cumsum(rng.normal(0, spec.noise * 0.05, n))
            return mean + walk + rng.normal(0, spec.noise, n)
        return mean + rng.normal(0, spec.noise, n)

    def generate_series(self, spec: SeriesSpec, start: float, n_points: int
                        ) -> tuple[np.ndarray, np.ndarray, list[Truth]]:
        """Timestamps and values (gaps removed) with the anomalies injected, and their truth."""
        rng = np.random.default_rng(spec.seed + int(start // self.interval) % 1_000_003)
        t = start + np.arange(n_points) * self.interval
        mean, sigma = self.clean(spec, t)
        x = self._noise(spec, mean, rng)
        keep = np.ones(n_points, bool)
        truth: list[Truth] = []
        if spec.gaps:
            for _ in range(rng.poisson(n_points / 20000)):
                g0 = int(rng.integers(0, n_points))
                keep[g0:g0 + int(rng.integers(2, 8))] = False   # short gaps: collector hiccups
        if self.anomaly_rate > 0:
            if self.anomalies_from is not None:
                first = max(0, math.ceil((self.anomalies_from - start) / self.interval))
            else:
                first = int(self.warmup / self.interval)
            count = rng.poisson(self.anomaly_rate * max(0, n_points - first))
            taken = np.zeros(n_points, bool)
            for _ in range(count):
                typ = ANOMALY_TYPES[int(rng.integers(0, len(ANOMALY_TYPES)))]
                if typ == "flatline" and spec.kind == "gauge":
                    continue  # a gauge that stays put is not news
                dur = {"spike": 1, "dip": 1, "level_shift": int(rng.integers(120, 720)),
                       "variance_change": int(rng.integers(120, 360)), "flatline": int(rng.integers(60, 240)),
                       "missing_data": int(rng.integers(30, 120))}[typ]
                if n_points - first - dur - 60 <= 0:
                    continue
                p = int(rng.integers(first, n_points - dur - 30))
                if taken[max(0, p - 240):p + dur + 240].any():
                    continue
                taken[p:p + dur] = True
                sl = slice(p, p + dur)
                mag = float(rng.uniform(6, 12))
                sig = float(sigma[p])
                if typ == "spike":
                    x[p] = x[p] + mag * sig
                elif typ == "dip":
                    x[p] = x[p] - mag * sig
                    if spec.kind in ("traffic", "orders", "cpu", "gauge", "latency"):
                        x[p] = max(x[p], 0.0)
                    mag = float((mean[p] - x[p]) / sig) if sig > 0 else mag
                elif typ == "level_shift":
                    mag = float(rng.uniform(5, 10)) * (1 if rng.random() < 0.5 else -1)
                    x[sl] = x[sl] + mag * sigma[sl]
                    if spec.kind != "random_walk":
                        x[sl] = np.maximum(x[sl], 0.0)
                elif typ == "variance_change":
                    mag = float(rng.uniform(3, 5))
                    x[sl] = mean[sl] + (x[sl] - mean[sl]) * mag
                elif typ == "flatline":
                    x[sl] = x[p - 1]
                    mag = float(dur)
                elif typ == "missing_data":
                    keep[sl] = False
                    mag = float(dur)
                if spec.kind in ("traffic", "orders", "gauge"):
                    x[sl] = np.round(x[sl])
                truth.append(Truth(spec.name, typ, float(t[p]), float(t[min(p + dur, n_points) - 1]), abs(mag)))
        if spec.kind in ("traffic", "orders", "gauge", "latency", "cpu"):
            x = np.maximum(x, 0.0)      # counts, latencies and percentages are never negative
        if spec.kind in ("traffic", "orders", "gauge"):
            x = np.round(x)
        if spec.kind == "latency":
            x = np.round(x, 2)
        else:
            x = np.round(x, 3)
        return t[keep], x[keep], sorted(truth, key=lambda tr: tr.start)

    def readings(self, start: float, n_points: int) -> Iterator[tuple[float, list[Reading]]]:
        """All series on the grid, timestamp by timestamp: ``(ts, readings at ts)``."""
        cols = []
        for spec in self.specs:
            ts, xs, _ = self.generate_series(spec, start, n_points)
            cols.append((spec, dict(zip(ts.tolist(), xs.tolist()))))
        for i in range(n_points):
            t = start + i * self.interval
            out = [Reading(spec.metric, vals[t], t, spec.labels) for spec, vals in cols if t in vals]
            yield t, out

    def truth(self, start: float, n_points: int) -> list[Truth]:
        out: list[Truth] = []
        for spec in self.specs:
            out.extend(self.generate_series(spec, start, n_points)[2])
        return out
