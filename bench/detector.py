"""Detector benchmark: scoring rate across many live series, refit cost, memory, and the naive baseline.

    python -m bench.detector [--series 10000] [--minutes 60]

Prints one table. Single process, single core.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
import tracemalloc

import numpy as np

from harewatch.producers.simulator import Simulator
from harewatch.workers.detection import IMPLEMENTATION, Detector, DetectorSettings
from harewatch.workers.detection.backtest import Evaluation, PointResult, Window, evaluate, run_series
from harewatch.workers.detection.detector import SeriesState

DAY = 86400.0


def median_time(fn, n: int = 3) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def warm_templates(sim: Simulator, start: float, days: int, det: Detector) -> list[tuple[bytes, object]]:
    """A warmed-up state per simulated series, and the series' spec (to continue it)."""
    out = []
    for spec in sim.specs:
        ts, xs, _ = sim.generate_series(spec, start, int(days * 1440))
        st = det.new_state()
        for t, x in zip(ts.tolist(), xs.tolist()):
            if det.update(st, t, x).refit_due:
                det.refit(st)
        out.append((st.to_bytes(), spec))
    return out


def bench_live(n_series: int, minutes: int) -> dict[str, float]:
    det = Detector(DetectorSettings(periods=(DAY,), interval=60.0))
    start = 1_700_006_400.0
    sim = Simulator(n_series=5, interval=60.0, seed=11, kinds=("traffic", "latency", "cpu", "sensor", "orders"))
    warm_days = 3
    templates = warm_templates(sim, start, warm_days, det)
    t_live = start + warm_days * DAY
    # continue each template's series for the live stretch
    live_vals = []
    for _, spec in templates:
        ts, xs, _ = sim.generate_series(spec, t_live, minutes)
        live_vals.append(xs.tolist())
    states = []
    rng = np.random.default_rng(0)
    for i in range(n_series):
        st = SeriesState.from_bytes(templates[i % len(templates)][0])
        # stagger refits over the day, as a fleet of series started at different times would be
        st.refit_at = t_live + float(rng.uniform(0, DAY))
        states.append(st)
    refits = 0
    refit_time = 0.0
    t0 = time.perf_counter()
    n = 0
    for m in range(minutes):
        t = t_live + m * 60.0
        for i, st in enumerate(states):
            r = det.update(st, t, live_vals[i % len(templates)][m] * (1 + (i % 7) * 1e-3))
            n += 1
            if r.refit_due:
                a = time.perf_counter()
                det.refit(st)
                refit_time += time.perf_counter() - a
                refits += 1
    el = time.perf_counter() - t0
    return {"points": n, "seconds": el, "rate": n / el, "refits": refits,
            "refit_ms": 1000 * refit_time / refits if refits else math.nan,
            "state_bytes": statistics.median(len(s.to_bytes()) for s in states[:100]), "states": states}


def memory_per_series(states: list[SeriesState], k: int = 2000) -> float:
    blobs = [s.to_bytes() for s in states[:k]]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    copies = [SeriesState.from_bytes(b) for b in blobs]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del copies
    return (after - before) / len(blobs)


def redis_per_series(periods: tuple[float, ...], days: int, copies: int = 1000) -> tuple[float, float]:
    """Serialised state and Redis memory per series (state, metadata, last-seen and series-index entries,
    as a detection worker writes them; MEMORY USAGE of each key, not the server's total) for 1-minute
    data with these periods, warmed up for ``days``."""
    import json
    import uuid

    from harewatch.settings import load_settings
    from harewatch.workers.store import StateStore

    det = Detector(DetectorSettings(periods=periods, interval=60.0))
    sim = Simulator(n_series=3, interval=60.0, seed=5, kinds=("traffic", "latency", "cpu"))
    blobs = [b for b, _ in warm_templates(sim, 1_700_006_400.0, days, det)]
    store = StateStore(load_settings().redis_url, f"bench{uuid.uuid4().hex[:6]}.")
    try:
        fps = [f"{i:016x}" for i in range(copies)]
        last = 1_700_006_400.0 + days * DAY
        store.save({fp: blobs[i % len(blobs)] for i, fp in enumerate(fps)}, {fp: last for fp in fps},
                   {fp: json.dumps({"metric": "requests_total", "labels": {"pod": f"web-7d9f8-{i:05d}",
                                                                          "namespace": "shop"}})
                    for i, fp in enumerate(fps)}, deadlines={"requests_total": {fp: last + 14 * DAY for fp in fps}})
        p = store.r.pipeline(transaction=False)
        keys = list(store.r.scan_iter(f"{store.ns}*", count=1000))
        for k in keys:
            p.memory_usage(k, samples=0)
        total = sum(v or 0 for v in p.execute())
    finally:
        store.clear()
    return statistics.median(len(b) for b in blobs), total / copies


def statsmodels_stl_times() -> dict[str, float]:
    from statsmodels.tsa.seasonal import STL
    from harewatch.workers.detection.stl import _jumps
    rng = np.random.default_rng(1)
    n, p = 4320, 1440
    x = 100 + 30 * np.sin(2 * np.pi * np.arange(n) / p) + rng.normal(0, 1, n)
    return {"default": median_time(lambda: STL(x, period=p).fit(), 1),
            "robust_jumps": median_time(lambda: STL(x, period=p, robust=True, **_jumps(p)).fit(), 3)}


def naive_series(ts: list[float], xs: list[float], window: int = 100, thr: float = 3.0) -> list[PointResult]:
    """Rolling mean/std z-score over the last 100 points, recomputed per point (the tutorial approach)."""
    arr = np.asarray(xs, dtype=float)
    out = []
    prev = False
    for i, (t, x) in enumerate(zip(ts, xs)):
        r = PointResult(t, x)
        if i >= 10:
            w = arr[max(0, i - window):i]
            mu, sd = w.mean(), w.std()
            z = (x - mu) / sd if sd > 0 else 0.0
            r.score, r.expected = float(z), float(mu)
            r.anomaly = bool(abs(z) >= thr)
            r.event = r.anomaly and not prev
            prev = r.anomaly
        out.append(r)
    return out


def accuracy(n_series: int = 14, days: int = 14, rate: float = 0.0005, seed: int = 7) -> dict[str, Evaluation]:
    sim = Simulator(n_series=n_series, interval=60.0, seed=seed, anomaly_rate=rate, warmup=4 * DAY)
    start = 1_700_006_400.0 - 1_700_006_400.0 % (7 * DAY)
    res = {"harewatch": Evaluation(), "naive": Evaluation()}
    times = {"harewatch": 0.0, "naive": 0.0}
    for spec in sim.specs:
        ts, xs, truth = sim.generate_series(spec, start, days * 1440)
        t, x = ts.tolist(), xs.tolist()
        wins = [Window(w.start, w.end, w.type, w.magnitude) for w in truth]
        for name, fn in (("harewatch", lambda: run_series(Detector(DetectorSettings()), t, x)),
                         ("naive", lambda: naive_series(t, x))):
            a = time.perf_counter()
            out = fn()
            times[name] += time.perf_counter() - a
            res[name].merge(evaluate(out, wins, 60.0, 5, {"spike": 5.0, "dip": 5.0}))
    for name in res:
        res[name].seconds = times[name]  # type: ignore[attr-defined]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--accuracy-series", type=int, default=14,
                    help="simulated series for the accuracy table (0: speed and memory only)")
    args = ap.parse_args()

    live = bench_live(args.series, args.minutes)
    mem = memory_per_series(live.pop("states"))
    stl = statsmodels_stl_times()
    acc = clean = None
    if args.accuracy_series > 0:
        acc = accuracy(args.accuracy_series)
        clean = accuracy(args.accuracy_series, rate=0.0, seed=8)
    daily = redis_per_series((DAY,), 3)
    weekly = redis_per_series((DAY, 7 * DAY), 21)
    rows = [
        ("detector build (HAREWATCH_PURE=1: the sources)", IMPLEMENTATION),
        ("live series (1-min data, daily period)", f"{args.series}"),
        ("points scored", f"{live['points']}"),
        ("scoring rate incl. amortised refits", f"{live['rate']:,.0f} points/s"),
        ("refits during the run / mean refit time", f"{live['refits']} / {live['refit_ms']:.1f} ms"),
        ("statsmodels STL, n=4320 p=1440, default args", f"{stl['default'] * 1000:,.0f} ms"),
        ("statsmodels STL, n=4320 p=1440, robust + jumps", f"{stl['robust_jumps'] * 1000:,.0f} ms"),
        ("state per series, serialised (median)", f"{live['state_bytes']:,.0f} bytes"),
        ("state per series, in memory (tracemalloc)", f"{mem:,.0f} bytes"),
        ("1-min data, daily period: state / Redis per series", f"{daily[0]:,.0f} / {daily[1]:,.0f} bytes"),
        ("  Redis per 100,000 series", f"{daily[1] * 1e5 / 2**20:,.0f} MiB"),
        ("1-min data, daily + weekly: state / Redis per series", f"{weekly[0]:,.0f} / {weekly[1]:,.0f} bytes"),
        ("  Redis per 100,000 series", f"{weekly[1] * 1e5 / 2**20:,.0f} MiB"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'detector benchmark':{w}}  value")
    print("-" * (w + 22))
    for k, v in rows:
        print(f"{k:{w}}  {v}")
    print()
    if acc is None or clean is None:
        print("accuracy: skipped (--accuracy-series 0)")
        return
    print(f"{'accuracy on simulate data':28} {'recall':>7} {'precision':>9} {'F1':>6} {'false/series-week':>18} {'us/point':>9}")
    for name, ev in acc.items():
        pts = ev.points
        print(f"{name:28} {ev.recall:7.3f} {ev.precision:9.3f} {ev.f1:6.3f} "
              f"{ev.false_events / (pts * 60 / (7 * DAY)):18.2f} {1e6 * ev.seconds / pts:9.1f}")  # type: ignore[attr-defined]
    for name, ev in clean.items():
        weeks = ev.points * 60 / (7 * DAY)
        print(f"{name + ' (anomaly-free data)':28} {'':7} {'':9} {'':6} {ev.false_events / weeks:18.2f}")
    print()
    print("recall by type (harewatch):")
    print(acc["harewatch"].table())


if __name__ == "__main__":
    main()
