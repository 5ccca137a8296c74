"""The detection engine: raw reading messages in, anomaly events, invalid messages and state writes out.

Broker-free so it can be tested and benchmarked alone; the Celery bootstep
in :mod:`workers.detect` feeds it batches and does the publishing and acking.
States are cached in memory while this worker is the queue's (single) active
consumer and written to Redis before the batch is acknowledged.
"""
from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import orjson

from harewatch.errors import InvalidInput
from harewatch.messages import AnomalyEvent, Reading
from harewatch.producers.formats import parse_body
from harewatch.routing.ownership import team_for
from harewatch.workers.detection import Detector, DetectorSettings
from harewatch.workers.detection.detector import PointResult, SeriesState
from harewatch.workers.store import INVALID_PER_EPISODE, Retired, StateStore

log = logging.getLogger("harewatch.detect")

FINGERPRINTS = 200_000    # series identities remembered with their fingerprint (then forgotten at once)


class Incoming(Protocol):
    """What the engine reads of a delivered reading message: a consumer's
    :class:`~harewatch.broker.consume.Delivery` as it is, or an :class:`InMessage`."""

    @property
    def body(self) -> bytes: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def timestamp(self) -> float | None: ...
    @property
    def routing_key(self) -> str: ...
    @property
    def exchange(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, Any]: ...
    @property
    def queue(self) -> str: ...
    @property
    def redelivered(self) -> bool: ...


@dataclass
class InMessage:
    """One reading message made by hand (tests, replays): the engine's :class:`Incoming`."""

    body: bytes
    content_type: str | None = None
    timestamp: float | None = None
    routing_key: str = ""
    exchange: str = ""
    headers: Mapping[str, Any] = field(default_factory=dict)
    queue: str = ""
    redelivered: bool = False


@dataclass
class Invalid:
    message: Incoming
    error: InvalidInput


@dataclass
class BatchResult:
    events: list[AnomalyEvent] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)
    refits: list[tuple[str, str, int]] = field(default_factory=list)
    readings: int = 0
    scored: int = 0
    duplicates: int = 0
    late: int = 0
    rejected: dict[str, int] = field(default_factory=dict)   # metric -> readings of series over max_series


class Engine:
    """Scores batches of reading messages against per-series state."""

    def __init__(self, config: Any, store: StateStore, clock: Callable[[], float] = time.time,
                 cache_size: int = 50_000, check_time_bounds: bool = True) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.cache: OrderedDict[str, SeriesState] = OrderedDict()
        self.cache_size = cache_size
        self.detectors: dict[str, Detector] = {}
        self.rules = list(config.ownership)
        self.dirty: dict[str, str] = {}          # series changed since the last persist -> metric
        self.last_seen: dict[str, float] = {}
        self.new_meta: dict[str, str] = {}
        self.new_anomalies: dict[str, list[bytes]] = defaultdict(list)
        self.check_time_bounds = check_time_bounds
        self.unsaved_readings = 0
        # series identity (metric, labels in their order) -> fingerprint: hashing the sorted series name
        # costs more than scoring the reading's label check
        self.fingerprints: dict[tuple[Any, ...], str] = {}
        # each cached series' newest point in its saved state: a redelivered reading no newer was scored
        # before the save (the broker may redeliver it after newer readings: it is no late reading)
        self.saved_last: dict[str, float] = {}

    def detector(self, metric: str) -> Detector:
        d = self.detectors.get(metric)
        if d is None:
            d = self.detectors[metric] = Detector(DetectorSettings.from_metric(self.config.metric(metric)))
        return d

    def reset(self) -> None:
        """Forget cached states (another consumer may have moved them on in Redis)."""
        self.cache.clear()
        self.dirty.clear()
        self.last_seen.clear()
        self.new_meta.clear()
        self.new_anomalies.clear()
        self.saved_last.clear()
        self.unsaved_readings = 0

    # -- parsing ------------------------------------------------------------------
    def parse(self, msgs: Sequence[Incoming], out: BatchResult, again: set[int] | None = None) -> list[Reading]:
        """The readings of these messages; ``again`` collects the ids of those from redelivered ones."""
        now = self.clock()
        readings: list[Reading] = []
        for m in msgs:
            try:
                got = parse_body(m.body, m.content_type, default_ts=m.timestamp or now,
                                 now=now if self.check_time_bounds else None)
            except InvalidInput as exc:
                out.invalid.append(Invalid(m, exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a parser bug must not crash the worker
                out.invalid.append(Invalid(m, InvalidInput(f"internal error while parsing: {exc!r}", "internal")))
                continue
            if again is not None and m.redelivered:
                again.update(id(r) for r in got)
            readings.extend(got)
        out.readings += len(readings)
        return readings

    # -- scoring ------------------------------------------------------------------
    def process(self, msgs: Sequence[Incoming]) -> BatchResult:
        """Parse and score one batch. States change in memory; call :meth:`persist` before acking."""
        out = BatchResult()
        again: set[int] = set()
        readings = self.parse(msgs, out, again)
        by_series: dict[str, list[Reading]] = defaultdict(list)
        fps = self.fingerprints
        for r in readings:
            key = (r.metric, *r.labels.items())
            fp = fps.get(key)
            if fp is None:
                if len(fps) >= FINGERPRINTS:
                    fps.clear()
                fp = fps[key] = r.fingerprint
            by_series[fp].append(r)
        for rs in by_series.values():
            rs.sort(key=lambda r: r.ts)
        retired_at = self._load({fp: rs[0].metric for fp, rs in by_series.items() if fp not in self.cache})
        fresh = self._fresh_states(by_series, retired_at, out)
        fits = self._ready_fits(by_series)
        for fp, rs in by_series.items():
            first = rs[0]
            det = self.detector(first.metric)
            st = fresh.get(fp)
            if st is not None:
                self.cache[fp] = st
                self.new_meta[fp] = json.dumps({"metric": first.metric, "labels": dict(first.labels)})
            else:
                st = self.cache[fp]
            self.cache.move_to_end(fp)
            saved = self.saved_last.get(fp) if again else None
            for r in rs:
                if saved is not None and r.ts <= saved and id(r) in again:
                    out.duplicates += 1      # scored before the last save, redelivered after newer readings
                    continue
                if st.fit_req is not None and fp in fits and r.ts >= st.fit_req + det.fit_grace(st):
                    res = det.update(st, r.ts, r.value, prepared=fits.pop(fp))
                else:
                    res = det.update(st, r.ts, r.value)
                if res.status == "duplicate":
                    out.duplicates += 1
                    continue
                if res.status == "late":
                    out.late += 1
                    continue
                out.scored += 1
                if res.event:
                    ev = self.event(r.metric, r.labels, fp, det, st, res)
                    out.events.append(ev)
                    self.new_anomalies[fp].append(orjson.dumps(
                        {"ts": ev.ts, "type": ev.type, "severity": ev.severity, "value": ev.value,
                         "expected": ev.expected, "score": ev.score}))
                if res.refit_due:
                    # computed by a Celery task meanwhile, or inline when due if the task is late
                    out.refits.append((fp, r.metric, st.fit_upto))
            self.dirty[fp] = first.metric
            if st.last_ts is not None:
                self.last_seen[fp] = st.last_ts
        self.unsaved_readings += out.scored + out.late   # a redelivered reading is a duplicate: not counted again
        while len(self.cache) > self.cache_size:
            fp, _ = self.cache.popitem(last=False)
            if fp in self.dirty:  # never evict unsaved work: put it back and stop
                self.cache[fp] = _
                self.cache.move_to_end(fp, last=False)
                break
            self.saved_last.pop(fp, None)
        return out

    def _fresh_states(self, by_series: dict[str, list[Reading]], retired_at: Mapping[str, float],
                      out: BatchResult) -> dict[str, SeriesState]:
        """New states for the series this batch starts: never seen, or back after being retired (by the
        sweeper, or silent past their retirement limit while cached). Each metric admits new series up to
        its ``max_series``; the readings of the others are not scored (they are counted, the first ones of
        each episode go to ``readings.invalid`` with reason ``cardinality``, and the limit is alerted)."""
        fresh: dict[str, SeriesState] = {}
        for fp, rs in by_series.items():
            det = self.detector(rs[0].metric)
            st = self.cache.get(fp)
            if st is None:
                st = det.new_state(key=fp)
                if fp in retired_at:
                    st.returned_after = max(0.0, rs[0].ts - retired_at[fp])
                fresh[fp] = st
            else:
                back = det.returned(st, rs[0].ts, key=fp)
                if back is not None:
                    fresh[fp] = back
        if not fresh:
            return fresh
        by_metric: dict[str, dict[str, int]] = defaultdict(dict)
        for fp in fresh:
            by_metric[by_series[fp][0].metric][fp] = len(by_series[fp])
        now = self.clock()
        for metric, counts in by_metric.items():
            limit = self.config.metric(metric).max_series
            adm = self.store.admit(metric, limit, counts, now)
            if not adm.rejected:
                continue
            rejected = sorted(adm.rejected)
            out.rejected[metric] = out.rejected.get(metric, 0) + sum(counts[fp] for fp in rejected)
            quota = max(0, INVALID_PER_EPISODE - adm.episode_before)
            for fp in rejected:
                del fresh[fp]
                self.cache.pop(fp, None)
                for r in by_series.pop(fp)[:quota]:
                    quota -= 1
                    out.invalid.append(Invalid(
                        InMessage(r.to_json().encode(), "application/json", r.ts, r.routing_key(), "readings"),
                        InvalidInput(f"metric {metric!r} has its limit of {limit} series (max_series); "
                                     f"this new series is not scored: {r.series}", "cardinality", None, "labels")))
            if adm.alert:
                out.events.append(self.limit_event(metric, limit or 0, adm.rejected_total, now))
        return fresh

    def limit_event(self, metric: str, limit: int, rejected: int, now: float) -> AnomalyEvent:
        """The self-watch alert ``harewatch_series_limit`` on a metric that reached its ``max_series``
        (stated again every minute while new series keep being rejected, so it stays firing)."""
        team = self.config.selfwatch.team
        return AnomalyEvent(series=f"harewatch-series-limit-{metric}", metric="harewatch_series_limit",
                            labels={"component": "detect", "limited_metric": metric}, type="spike",
                            severity="warning", ts=now, value=float(limit + rejected), expected=float(limit),
                            lower=None, upper=float(limit), score=0.99, team=team,
                            model={"method": "selfwatch", "max_series": limit, "rejected_readings": rejected})

    def event(self, metric: str, labels: Mapping[str, str], fp: str, det: Detector, st: SeriesState,
              res: PointResult) -> AnomalyEvent:
        """The anomaly event of a point result (the first one after a comeback says the series was retired)."""
        model = det.model_info(st)
        st.returned_after = 0.0
        return AnomalyEvent(
            series=fp, metric=metric, labels=dict(labels), type=res.type or "spike", severity=res.severity or "warning",
            ts=res.ts, value=res.value, expected=res.expected, lower=res.lower, upper=res.upper,
            score=round(res.surprise, 4), team=team_for(metric, labels, self.rules), confidence=res.confidence,
            model=model, window=det.window(st))

    def persist(self) -> None:
        """Write every state changed since the last persist, with its retirement deadline (one Redis
        round trip)."""
        if not self.dirty and not self.new_meta and not self.unsaved_readings:
            return
        blobs: dict[str, bytes] = {}
        deadlines: dict[str, dict[str, float]] = defaultdict(dict)
        for fp, metric in self.dirty.items():
            st = self.cache.get(fp)
            if st is None:
                continue
            blobs[fp] = st.to_bytes()
            if st.last_ts is not None:
                self.saved_last[fp] = st.last_ts
            if st.last_ts is not None:
                deadlines[metric][fp] = st.last_ts + self.detector(metric).retire_limit(st)
        self.store.save(blobs, self.last_seen, self.new_meta, clear_missing=self.dirty,
                        readings=self.unsaved_readings, deadlines=deadlines, anomalies=self.new_anomalies)
        self.new_anomalies.clear()
        self.unsaved_readings = 0
        self.dirty.clear()
        self.last_seen.clear()
        self.new_meta.clear()

    def _load(self, metric_of: Mapping[str, str]) -> dict[str, float]:
        """Cache the stored states of these series (``{fp: metric}``); returns, for retired ones, when each
        was last seen."""
        states, retired = self.store.load(metric_of)
        for fp, blob in states.items():
            try:
                st = self.cache[fp] = SeriesState.from_bytes(blob)
                if st.last_ts is not None:
                    self.saved_last[fp] = st.last_ts
            except Exception:  # noqa: BLE001 - a corrupt state starts afresh rather than wedging the series
                log.exception("discarding unreadable state of series %s", fp)
        return retired

    def _ready_fits(self, by_series: Mapping[str, list[Reading]]) -> dict[str, Any]:
        """Fits computed elsewhere for series whose refit falls due within this batch."""
        wanted = {}
        for fp, rs in by_series.items():
            st = self.cache.get(fp)
            if st is not None and st.fit_req is not None:
                det = self.detector(rs[0].metric)
                if max(r.ts for r in rs) >= st.fit_req + det.fit_grace(st):
                    wanted[fp] = st.fit_upto
        return self.store.take_fits(wanted)

    # -- time-driven ----------------------------------------------------------------
    def missing(self, now: float | None = None, horizon: float = 86400.0) -> list[AnomalyEvent]:
        """``missing_data`` events for series silent past their limit (each silence once)."""
        now = self.clock() if now is None else now
        # event time, not wall time: a replay of history must not look like every series went silent
        mark = self.store.watermark()
        if mark is not None:
            now = min(now, mark)
        out = []
        for fp in self.store.stale_series(now - 60.0, now - horizon):
            meta = self.store.meta(fp)
            if meta is None:
                continue
            det = self.detector(meta["metric"])
            blob = self.store.get_states([fp]).get(fp)
            if blob is None:
                continue
            st = SeriesState.from_bytes(blob)
            res = det.missing_due(st, now)
            if res is not None and self.store.mark_missing(fp):
                out.append(self.event(meta["metric"], meta["labels"], fp, det, st, res))
        return out

    def retire(self, now: float | None = None, chunk: int = 1000) -> tuple[list[Retired], list[AnomalyEvent]]:
        """Retire the series silent past their retirement limit (in event time, as :meth:`missing`): their
        state is deleted, and an open ``missing_data`` alert is resolved by the returned events."""
        now = self.clock() if now is None else now
        mark = self.store.watermark()
        if mark is None:
            return [], []
        mark = min(now, mark)
        gone: list[Retired] = []
        for metric in self.store.metrics():
            while True:
                due = self.store.due_for_retirement(metric, mark, chunk)
                got = self.store.retire(metric, due, mark)
                gone += got
                if len(due) < chunk or not got:
                    break
        events = [AnomalyEvent(series=r.fingerprint, metric=r.metric, labels=dict(r.labels), type="missing_data",
                               severity="warning", ts=mark, value=None, expected=None, lower=None, upper=None,
                               score=0.0, team=team_for(r.metric, r.labels, self.rules), status="resolved",
                               model={"retired": True})
                  for r in gone if r.had_missing_alert]
        return gone, events


def refit_series(config: Any, store: StateStore, fp: str, metric: str, upto: int) -> str:
    """Compute a new model for one series from its stored history before bucket ``upto``
    (the Celery refit task's body)."""
    blob = store.get_states([fp]).get(fp)
    if blob is None:
        return "no state"
    det = Detector(DetectorSettings.from_metric(config.metric(metric)))
    fit = det.fit(SeriesState.from_bytes(blob), upto)
    store.put_fit(fp, upto, fit)
    return fit.method if fit else "non-seasonal"
