"""The router's state in Redis: alerts, groups with their next flush time, the notification log and
silences. An adapter: the decisions are the router's (:mod:`routing.dispatch`); this only reads and writes,
in a fixed number of round trips per batch of events or per flush of any number of groups, so a
restarted (or another) router carries on where this one stopped.

Keys under ``<prefix>hw:rt:``:

- ``alert:<fp>``: the alert (labels, starts/ends, events), small; ``event:<fp>``: its latest anomaly
  event exactly as received (never re-encoded: an event carries a chart window of some KB);
- ``firing``: sorted set of alert fingerprints by the time they stop firing;
- ``group:<key>``, ``members:<key>``: a group's route and labels, and its alerts; ``due``: groups by
  their next flush time;
- ``nlog:<key>:<receiver>:<integration>``: what was last sent there (the notification log);
- ``silences``: see :mod:`routing.silences`; ``events_total``: anomaly events recorded.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import orjson
import redis

from harewatch.messages import SCHEMA_VERSION, Alert, AnomalyEvent
from harewatch.routing.silences import SilenceStore

ALERT_TTL = 7 * 86400

# One call merges a batch of events into the stored alerts, atomically. KEYS[1]: the namespace (keys are
# built from it: one Redis, not a cluster). ARGV: ttl, now, resolve timeout, schema, events in the batch,
# the batch as JSON [[fp, events, [labels, [[group key, group doc, group wait], ...]], resolved], ...], then
# each alert's latest event text in the same order. Alertmanager's rule: an alert that is still firing keeps
# its start, one that resolved starts anew; each event pushes its end to now + resolve timeout. A resolved
# event ends a firing alert now (its groups report it resolved at their next flush) and is otherwise ignored.
_RECORD = """
local ns, ttl, now, resolve = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('incrby', ns .. 'events_total', ARGV[5])
for i, a in ipairs(cjson.decode(ARGV[6])) do
  local fp, key, labels, groups = a[1], ns .. 'alert:' .. a[1], a[3][1], a[3][2]
  local sig = ''
  for _, g in ipairs(groups) do sig = sig .. g[1] .. ' ' end
  local starts, events, joined = now, a[2], false
  local old = redis.call('get', key)
  local firing = false
  if old then
    old = cjson.decode(old)
    if tonumber(old.endsAt) > now then
      firing = true
      starts = old.startsAt
      joined = old.groups == sig      -- still firing in the same groups: a flush cannot have removed it
    end
    events = events + (tonumber(old.events) or 0)
  end
  if a[4] == 1 then
    if firing then
      old.endsAt, old.events = now, events
      redis.call('set', key, cjson.encode(old), 'EX', ttl)
      redis.call('zadd', ns .. 'firing', now, fp)
    end
  else
    local ends = now + resolve
    redis.call('set', key, cjson.encode({schema = tonumber(ARGV[4]), labels = labels, fingerprint = fp,
                                         startsAt = starts, endsAt = ends, lastSeen = now, events = events,
                                         groups = sig}), 'EX', ttl)
    redis.call('set', ns .. 'event:' .. fp, ARGV[6 + i], 'EX', ttl)
    redis.call('zadd', ns .. 'firing', ends, fp)
    if not joined then
      for _, g in ipairs(groups) do
        redis.call('sadd', ns .. 'members:' .. g[1], fp)
        if redis.call('exists', ns .. 'group:' .. g[1]) == 0 then
          g[2].created = now
          redis.call('set', ns .. 'group:' .. g[1], cjson.encode(g[2]))
        end
        redis.call('zadd', ns .. 'due', 'NX', now + g[3], g[1])
      end
    end
  end
end
return 1
"""

# After a flush: forget the reported resolved alerts that are still resolved (one may have fired again
# since it was read), drop members whose alert expired, then forget the group if no member is left,
# else schedule its next flush.  KEYS: due, group, members, firing.  ARGV: group key, now, next flush,
# number of resolved, resolved fps..., gone fps...
_SETTLE = """
local gk, now, nxt, nres = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for i = 5, 4 + nres do
  local s = redis.call('zscore', KEYS[4], ARGV[i])
  if (not s) or tonumber(s) <= now then
    redis.call('srem', KEYS[3], ARGV[i])
    redis.call('zrem', KEYS[4], ARGV[i])
  end
end
for i = 5 + nres, #ARGV do redis.call('srem', KEYS[3], ARGV[i]) end
if redis.call('scard', KEYS[3]) == 0 then
  redis.call('zrem', KEYS[1], gk)
  redis.call('del', KEYS[2], KEYS[3])
  return 0
end
redis.call('zadd', KEYS[1], nxt, gk)
return 1
"""


@dataclass(frozen=True)
class GroupRecord:
    """A group an alert joins: its key, what the router needs to flush it (the store adds when it was
    created), and how long a new group waits before its first flush."""

    key: str
    doc: Mapping[str, Any]     # route path, receiver, group labels
    wait: float


@dataclass(frozen=True)
class Placement:
    """Where an alert is kept and grouped: fixed for its label set under one routing config."""

    fingerprint: str
    labels: Mapping[str, str]
    groups: Sequence[GroupRecord]

    @functools.cached_property
    def encoded(self) -> bytes:
        """Its labels and groups as the record script reads them (encoded once: they never change)."""
        return orjson.dumps([self.labels, [[g.key, g.doc, g.wait] for g in self.groups]])


@dataclass(frozen=True)
class AlertUpdate:
    """What a batch of events says of one alert: where it goes, how many events, the latest one's text."""

    place: Placement
    events: int
    event_json: str | bytes
    resolved: bool = False     # the latest event ends the alert now (it is not a new firing)


@dataclass(frozen=True)
class DueGroup:
    """A group whose flush time has come, read back with its alerts and notification log."""

    key: str
    doc: Mapping[str, Any] | None           # None: the group is gone
    alerts: list[Alert]                     # without their events (see :meth:`RouterStore.events`)
    gone: list[str]                         # member fingerprints whose alert expired


@dataclass(frozen=True)
class Settle:
    """What to write back after a group was flushed."""

    key: str
    sent: Mapping[tuple[str, str], Mapping[str, Any]]    # (receiver, integration) -> log entry
    keep: float                                          # seconds the log entries are kept
    resolved: Sequence[str]                              # reported resolved alerts, to forget
    gone: Sequence[str]
    next_flush: float


class PendingWrite:
    """A script call sent on a connection of its own, its reply read by :meth:`wait`."""

    def __init__(self, r: Any, script: Any, keys: list[str], args: list[Any]) -> None:
        self.r, self.script, self.keys, self.args = r, script, keys, args
        self.conn: Any = None
        if not args:
            return
        self.conn = r.connection_pool.get_connection()
        try:
            self.conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except BaseException:
            self._release(broken=True)
            raise

    def wait(self) -> None:
        """Return once Redis ran the script; raise (nothing saved) if it did not."""
        if self.conn is None:
            return
        try:
            self.conn.read_response()
        except redis.exceptions.NoScriptError:      # not loaded yet, or Redis restarted and lost its scripts
            self._release()
            self.script(keys=self.keys, args=self.args)
            return
        except BaseException:
            self._release(broken=True)
            raise
        self._release()

    def abandon(self) -> None:
        """Give the connection up without reading the reply (its batch is redelivered, not acknowledged)."""
        self._release(broken=True)

    def _release(self, broken: bool = False) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if broken:
            conn.disconnect()
        self.r.connection_pool.release(conn)


class RouterStore:
    """Alerts, groups, the notification log and silences under ``<prefix>hw:rt:`` in one Redis."""

    def __init__(self, redis_url: str, prefix: str, clock: Callable[[], float]) -> None:
        self.r: Any = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.ns = f"{prefix}hw:rt:"
        self.silences = SilenceStore(self.r, self.k("silences"), clock)
        self._record = self.r.register_script(_RECORD)
        self._settle = self.r.register_script(_SETTLE)

    def k(self, *parts: str) -> str:
        return self.ns + ":".join(parts)

    # -- alerts -------------------------------------------------------------------
    def alerts(self, fingerprints: Sequence[str]) -> list[Alert]:
        """The alerts that still exist, in order, without their events."""
        if not fingerprints:
            return []
        return [Alert.from_json(v) for v in self.r.mget([self.k("alert", a) for a in fingerprints]) if v]

    def alerts_by_fp(self, fingerprints: Sequence[str]) -> dict[str, Alert]:
        return {a.fingerprint: a for a in self.alerts(fingerprints)}

    def events(self, alerts: Iterable[Alert]) -> list[Alert]:
        """The same alerts with their latest anomaly event (one round trip)."""
        alerts = list(alerts)
        if not alerts:
            return []
        raw = self.r.mget([self.k("event", a.fingerprint) for a in alerts])
        return [a.with_event(AnomalyEvent.from_json(v)) if v else a for a, v in zip(alerts, raw)]

    def record_started(self, updates: Sequence[AlertUpdate], now: float, resolve_timeout: float) -> "PendingWrite":
        """Merge a batch into the stored alerts (see ``_RECORD``), keep them in the firing index, add them
        to their groups (a new group waits for its first flush; an existing one keeps its schedule) and
        count the events: one round trip, atomic, so concurrent routers cannot lose an update. Sent, not
        waited for: Redis runs it while the caller parses the next batch, and nothing is saved for sure
        until :meth:`PendingWrite.wait` returned."""
        batch = b"[" + b",".join(b'["%s",%d,%s,%d]' % (u.place.fingerprint.encode(), u.events, u.place.encoded,
                                                        u.resolved)
                                 for u in updates) + b"]"
        args = [ALERT_TTL, repr(now), repr(resolve_timeout), SCHEMA_VERSION, sum(u.events for u in updates),
                batch, *(u.event_json for u in updates)]
        return PendingWrite(self.r, self._record, [self.ns], args if updates else [])

    def events_total(self) -> int:
        """Anomaly events recorded since the store was cleared."""
        return int(self.r.get(self.k("events_total")) or 0)

    def firing(self, now: float) -> list[Alert]:
        """Alerts not yet past their resolve timeout (without their events)."""
        return self.alerts(self.firing_fingerprints(now))

    def firing_fingerprints(self, now: float) -> list[str]:
        return [a.decode() for a in self.r.zrangebyscore(self.k("firing"), now, "+inf")]

    # -- groups -------------------------------------------------------------------------
    def due(self, now: float) -> list[str]:
        return [g.decode() for g in self.r.zrangebyscore(self.k("due"), 0, now)]

    def next_due(self) -> float | None:
        """When the earliest group is due, or None when none is scheduled."""
        first = self.r.zrange(self.k("due"), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def load_due(self, keys: Sequence[str]) -> list[DueGroup]:
        """The groups with their alerts: two round trips whatever their number."""
        p = self.r.pipeline(transaction=False)
        for key in keys:
            p.get(self.k("group", key))
            p.smembers(self.k("members", key))
        raw = p.execute()
        members = [sorted(m.decode() for m in raw[i * 2 + 1]) for i in range(len(keys))]
        alerts = self.alerts_by_fp(sorted({fp for ms in members for fp in ms}))
        return [DueGroup(key, json.loads(raw[i * 2]) if raw[i * 2] else None,
                         [alerts[fp] for fp in ms if fp in alerts], [fp for fp in ms if fp not in alerts])
                for i, (key, ms) in enumerate(zip(keys, members))]

    def unschedule(self, key: str) -> None:
        self.r.zrem(self.k("due"), key)

    # -- the notification log --------------------------------------------------------------
    def last_sent(self, wanted: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The log entry of each (group, receiver, integration), ``{}`` for none: one round trip."""
        if not wanted:
            return {}
        raw = self.r.mget([self.k("nlog", *w) for w in wanted])
        return {w: (json.loads(v) if v else {}) for w, v in zip(wanted, raw)}

    def settle(self, done: Sequence[Settle], now: float) -> None:
        """Record what the flushes sent, then reschedule or forget each group: one round trip."""
        if not done:
            return
        p = self.r.pipeline(transaction=False)
        for s in done:
            for (receiver, integ), entry in s.sent.items():
                p.set(self.k("nlog", s.key, receiver, integ), json.dumps(dict(entry)), ex=int(s.keep))
            self._settle(keys=[self.k("due"), self.k("group", s.key), self.k("members", s.key), self.k("firing")],
                         args=[s.key, repr(now), repr(s.next_flush), len(s.resolved), *s.resolved, *s.gone],
                         client=p)
        p.execute()

    def clear(self) -> None:
        for key in self.r.scan_iter(self.ns + "*", count=1000):
            self.r.delete(key)
