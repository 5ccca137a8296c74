"""Series state in Redis: detector states, model fits, last-seen times, series metadata.

Every key is namespaced by the settings' prefix (``<prefix>hw:...``) so several
harewatch installations (or test runs) can share one Redis.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import redis

from harewatch.workers.detection.stl import Fit


RETIRED_TTL = 30 * 86400     # a retired series is remembered about as long as it was kept, at most this long
RESTATE_EVERY = 60.0         # a metric over its series limit is alerted again this often (keeps it firing)
LIMIT_EPISODE = 3600.0       # an hour without rejected series ends a limit episode
RECENT_ANOMALIES = 20       # anomalies kept per series for ``harewatch series show``
INVALID_PER_EPISODE = 100    # readings of rejected series sent to readings.invalid per episode

# Admit new series of one metric up to its limit, atomically (several workers may admit at once).
# KEYS[1]: namespace. ARGV: metric, limit (-1: none), now (wall), then fp, readings pairs. Returns
# {rejected fps, rejected readings of this episode before these, rejected readings ever, alert (0/1)}.
_ADMIT = """
local ns, metric, limit, now = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local zkey = ns .. 'series:' .. metric
local card = redis.call('zcard', zkey)
local rejected, nrej = {}, 0
redis.call('sadd', ns .. 'metrics', metric)
for i = 4, #ARGV, 2 do
  local fp = ARGV[i]
  if not redis.call('zscore', zkey, fp) then
    if limit < 0 or card < limit then
      redis.call('zadd', zkey, '+inf', fp)      -- its retirement deadline is set when its state is saved
      card = card + 1
    else
      rejected[#rejected + 1] = fp
      nrej = nrej + tonumber(ARGV[i + 1])
    end
  end
end
if nrej == 0 then return {rejected, 0, 0, 0} end
local lk = ns .. 'limit:' .. metric
local last = tonumber(redis.call('hget', lk, 'last_at') or '0')
if now - last > %(episode)f then redis.call('hset', lk, 'episode', 0, 'since', now) end
local before = tonumber(redis.call('hget', lk, 'episode') or '0')
redis.call('hincrby', lk, 'episode', nrej)
local total = redis.call('hincrby', lk, 'rejected', nrej)
redis.call('hset', lk, 'last_at', now, 'limit', limit)
local alert = 0
if now - tonumber(redis.call('hget', lk, 'alerted_at') or '0') >= %(restate)f then
  redis.call('hset', lk, 'alerted_at', now)
  alert = 1
end
return {rejected, before, total, alert}
""" % {"episode": LIMIT_EPISODE, "restate": RESTATE_EVERY}

# Retire series of one metric whose deadline passed (re-checked here: one may have reported meanwhile).
# KEYS[1]: namespace. ARGV: metric, event-time mark, longest memory of a tombstone (event time), fps.
# Returns {fp, had an open missing_data alert (0/1), its meta} for each series retired.
_RETIRE = """
local ns, metric, mark, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local zkey, tomb = ns .. 'series:' .. metric, ns .. 'retired:' .. metric
local out, keep = {}, 0
for i = 4, #ARGV do
  local fp = ARGV[i]
  local deadline = redis.call('zscore', zkey, fp)
  if deadline and tonumber(deadline) <= mark then
    local missing = redis.call('exists', ns .. 'missing:' .. fp)
    local meta = redis.call('get', ns .. 'meta:' .. fp) or ''
    local last = redis.call('zscore', ns .. 'lastseen', fp) or '0'
    redis.call('del', ns .. 'state:' .. fp, ns .. 'meta:' .. fp, ns .. 'missing:' .. fp, ns .. 'anomalies:' .. fp)
    redis.call('zrem', ns .. 'lastseen', fp)
    redis.call('zrem', zkey, fp)
    redis.call('zadd', tomb, last, fp)
    keep = math.max(keep, tonumber(deadline) - tonumber(last))
    out[#out + 1] = {fp, missing, meta}
  end
end
if #out > 0 then
  -- a retired series is remembered (by event time) about as long as it was kept, at most ttl: the
  -- tombstones of churning series must not pile up
  redis.call('zremrangebyscore', tomb, '-inf', mark - math.min(tonumber(ttl), 2 * keep))
  redis.call('hincrby', ns .. 'stats:retired_by_metric', metric, #out)
end
return out
"""


@dataclass(frozen=True)
class Admission:
    """What :meth:`StateStore.admit` decided for a batch's new series of one metric."""

    rejected: frozenset[str]
    episode_before: int = 0     # readings of rejected series this limit episode, before this batch's
    rejected_total: int = 0     # ... and ever, this batch's included
    alert: bool = False         # time to (re)state the limit alert


@dataclass(frozen=True)
class Retired:
    """A series retired by :meth:`StateStore.retire`."""

    fingerprint: str
    metric: str
    labels: Mapping[str, str]
    had_missing_alert: bool


class StateStore:
    """Thin, batched access to the keys harewatch keeps per series.

    Per series ``state:<fp>``, ``meta:<fp>`` (metric and labels), ``missing:<fp>`` (a missing_data alert
    is open), ``anomalies:<fp>`` (its latest anomalies); ``lastseen`` (series by their newest point),
    ``series:<metric>`` (a metric's live series by retirement deadline, in event time: its size is what
    ``max_series`` bounds), ``retired:<metric>`` (its retired series by when they were last seen),
    ``metrics``, ``limit:<metric>`` (a metric over its limit) and ``stats:*`` counters.
    """

    def __init__(self, url: str, prefix: str = "") -> None:
        self.r: Any = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                      health_check_interval=30)
        self.ns = f"{prefix}hw:"
        self._admit = self.r.register_script(_ADMIT)
        self._retire = self.r.register_script(_RETIRE)

    def _k(self, kind: str, fp: str) -> str:
        return f"{self.ns}{kind}:{fp}"

    # detector states ---------------------------------------------------------
    def get_states(self, fps: list[str]) -> dict[str, bytes]:
        if not fps:
            return {}
        vals = self.r.mget([self._k("state", fp) for fp in fps])
        return {fp: v for fp, v in zip(fps, vals) if v is not None}

    def load(self, metric_of: Mapping[str, str]) -> tuple[dict[str, bytes], dict[str, float]]:
        """The stored states of these series (``{fp: metric}``), and for those without one, when each
        retired series was last seen (one round trip)."""
        if not metric_of:
            return {}, {}
        fps = list(metric_of)
        by_metric: dict[str, list[str]] = {}
        for fp, m in metric_of.items():
            by_metric.setdefault(m, []).append(fp)
        p = self.r.pipeline(transaction=False)
        p.mget([self._k("state", fp) for fp in fps])
        for m, group in by_metric.items():
            p.zmscore(f"{self.ns}retired:{m}", group)
        vals, *scores = p.execute()
        states = {fp: v for fp, v in zip(fps, vals) if v is not None}
        retired = {fp: float(sc) for group, got in zip(by_metric.values(), scores) for fp, sc in zip(group, got)
                   if sc is not None and fp not in states}
        return states, retired

    def admit(self, metric: str, limit: int | None, readings: Mapping[str, int], now: float) -> Admission:
        """Count these new series of ``metric`` in, up to ``limit`` live series; the rest are rejected
        (``readings``: how many readings each brought, for the limit's counters)."""
        args: list[Any] = [metric, -1 if limit is None else limit, repr(now)]
        for fp, n in readings.items():
            args += [fp, n]
        rej, before, total, alert = self._admit(keys=[self.ns], args=args)
        return Admission(frozenset(x.decode() for x in rej), int(before), int(total), bool(alert))

    def save(self, states: Mapping[str, bytes], last_seen: Mapping[str, float],
             meta: Mapping[str, str], clear_missing: Iterable[str] = (), readings: int = 0,
             deadlines: Mapping[str, Mapping[str, float]] | None = None,
             anomalies: Mapping[str, list[bytes]] | None = None) -> None:
        """Write states, last-seen times, new metadata, retirement deadlines (``{metric: {fp: event
        time}}``), each series' latest anomalies (newest last) and the readings counter in one round trip.
        The counter goes last, so whoever sees the readings counted also sees what they wrote."""
        p = self.r.pipeline(transaction=False)
        for fp, blob in states.items():
            p.set(self._k("state", fp), blob)
        if last_seen:
            p.zadd(f"{self.ns}lastseen", dict(last_seen))
        for metric, due in (deadlines or {}).items():
            if due:
                p.zadd(f"{self.ns}series:{metric}", dict(due))
        for fp, docs in (anomalies or {}).items():
            k = self._k("anomalies", fp)
            p.lpush(k, *docs)
            p.ltrim(k, 0, RECENT_ANOMALIES - 1)
            p.expire(k, RETIRED_TTL)
        for fp, m in meta.items():
            p.set(self._k("meta", fp), m)
        cm = list(clear_missing)
        if cm:
            p.delete(*[self._k("missing", fp) for fp in cm])
        if readings:    # last: Redis runs one connection's commands in order, so a reader who sees the
            p.incrby(f"{self.ns}stats:readings", readings)   # count also sees everything they wrote
        p.execute()

    # series lifecycle ---------------------------------------------------------
    def metrics(self) -> list[str]:
        """The metrics that have series."""
        return sorted(m.decode() for m in self.r.smembers(f"{self.ns}metrics"))

    def series_count(self, metric: str) -> int:
        return int(self.r.zcard(f"{self.ns}series:{metric}"))

    def series_of(self, metric: str) -> list[str]:
        return [m.decode() for m in self.r.zrange(f"{self.ns}series:{metric}", 0, -1)]

    def due_for_retirement(self, metric: str, mark: float, limit: int = 1000) -> list[str]:
        """Series of ``metric`` whose retirement deadline is at or before event time ``mark``."""
        return [m.decode() for m in self.r.zrangebyscore(f"{self.ns}series:{metric}", "-inf", mark, 0, limit)]

    def retire(self, metric: str, fps: Iterable[str], mark: float) -> list[Retired]:
        """Delete these series (state, meta, open-missing mark, indexes) if still due at ``mark``, leaving
        a tombstone so a comeback says so; counted per metric in ``stats:retired_by_metric``."""
        fps = list(fps)
        if not fps:
            return []
        out = []
        for fp, missing, meta in self._retire(keys=[self.ns], args=[metric, repr(mark), RETIRED_TTL, *fps]):
            m = json.loads(meta) if meta else {}
            out.append(Retired(fp.decode(), metric, m.get("labels", {}), bool(missing)))
        return out

    def forget(self, fp: str, metric: str) -> bool:
        """Drop one series on purpose (``harewatch series forget``); True if it existed. No tombstone:
        if it reports again it is simply new."""
        p = self.r.pipeline(transaction=True)
        p.delete(self._k("state", fp), self._k("meta", fp), self._k("missing", fp), self._k("anomalies", fp))
        p.zrem(f"{self.ns}retired:{metric}", fp)
        p.zrem(f"{self.ns}lastseen", fp)
        p.zrem(f"{self.ns}series:{metric}", fp)
        return bool(p.execute()[0])

    def anomalies(self, fp: str) -> list[dict[str, Any]]:
        """The series' latest anomalies, newest first."""
        return [json.loads(v) for v in self.r.lrange(self._k("anomalies", fp), 0, -1)]

    def last_seen(self, fps: list[str]) -> list[float | None]:
        """Each series' newest point (event time)."""
        if not fps:
            return []
        return [float(v) if v is not None else None for v in self.r.zmscore(f"{self.ns}lastseen", fps)]

    def retired_total(self) -> dict[str, int]:
        """Series retired so far, by metric."""
        return {k.decode(): int(v) for k, v in self.r.hgetall(f"{self.ns}stats:retired_by_metric").items()}

    def limits(self) -> dict[str, dict[str, float]]:
        """Metrics that hit their series limit: rejected readings ever, this episode, since and last."""
        out = {}
        for m in self.metrics():
            h = self.r.hgetall(f"{self.ns}limit:{m}")
            if h:
                out[m] = {k.decode(): float(v) for k, v in h.items()}
        return out

    def readings_total(self) -> int:
        """Readings taken in by detection workers so far (all series)."""
        return int(self.r.get(f"{self.ns}stats:readings") or 0)

    def metas(self, fps: list[str]) -> list[dict[str, Any] | None]:
        """Each series' metric and labels (None where unknown), one round trip."""
        if not fps:
            return []
        return [json.loads(v) if v else None for v in self.r.mget([self._k("meta", fp) for fp in fps])]

    def meta(self, fp: str) -> dict[str, Any] | None:
        v = self.r.get(self._k("meta", fp))
        return json.loads(v) if v else None

    def watermark(self) -> float | None:
        """The newest event time any series has reached (the pipeline's event-time clock)."""
        top = self.r.zrange(f"{self.ns}lastseen", -1, -1, withscores=True)
        return float(top[0][1]) if top else None

    def stale_series(self, older_than: float, newer_than: float) -> list[str]:
        """Series whose newest point is between the two event times."""
        return [m.decode() for m in self.r.zrangebyscore(f"{self.ns}lastseen", newer_than, older_than)]

    def mark_missing(self, fp: str) -> bool:
        """True the first time a silence is reported (so two checkers report it once)."""
        return bool(self.r.set(self._k("missing", fp), b"1", nx=True, ex=7 * 86400))

    # fits --------------------------------------------------------------------
    def put_fit(self, fp: str, upto: int, fit: Fit | None) -> None:
        """A fit computed on the history before bucket ``upto`` (the key says which request it answers)."""
        self.r.set(self._k("fit", f"{fp}:{upto}"), encode_fit(fit), ex=86400)

    def take_fits(self, wanted: Mapping[str, int]) -> dict[str, Fit | None]:
        """The fits answering ``{series: upto}`` requests that are ready (taken: deleted from Redis)."""
        if not wanted:
            return {}
        fps = list(wanted)
        p = self.r.pipeline(transaction=False)
        for fp in fps:
            p.getdel(self._k("fit", f"{fp}:{wanted[fp]}"))   # atomic: a fit written meanwhile is never lost
        vals = p.execute()
        return {fp: decode_fit(v) for fp, v in zip(fps, vals) if v is not None}

    def clear(self) -> None:
        """Delete every key of this namespace (tests, demo reset)."""
        for k in self.r.scan_iter(f"{self.ns}*", count=1000):
            self.r.delete(k)


def encode_fit(fit: Fit | None) -> bytes:
    if fit is None:
        return b"NONE"
    head = json.dumps({"trend_end": fit.trend_end, "method": fit.method, "periods": list(fit.periods),
                       "resid_scale": fit.resid_scale}).encode()
    return b"FIT1" + struct.pack("<I", len(head)) + head + np.asarray(fit.profile, dtype="<f8").tobytes()


def decode_fit(blob: bytes) -> Fit | None:
    if blob == b"NONE":
        return None
    (hl,) = struct.unpack("<I", blob[4:8])
    head = json.loads(blob[8:8 + hl])
    prof = np.frombuffer(blob[8 + hl:], dtype="<f8").copy()
    return Fit(prof, head["trend_end"], head["method"], tuple(head["periods"]), head["resid_scale"])
