"""The router's state in Redis: alerts, groups with their next flush time, the notification log and
silences. An adapter: the decisions are the router's (:mod:`routing.dispatch`); this only reads and writes,
each change in one round trip, so a restarted (or another) router carries on where this one stopped."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import redis

from harewatch.messages import Alert
from harewatch.routing.silences import SilenceStore

ALERT_TTL = 7 * 86400


@dataclass(frozen=True)
class GroupRecord:
    """A group an alert joined: its key, what the router needs to flush it, and when first."""

    key: str
    doc: Mapping[str, Any]     # route path, receiver, group labels, created
    first_due: float


class RouterStore:
    """Alerts, groups, the notification log and silences under ``<prefix>hw:rt:`` in one Redis."""

    def __init__(self, redis_url: str, prefix: str, clock: Callable[[], float]) -> None:
        self.r: Any = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.ns = f"{prefix}hw:rt:"
        self.silences = SilenceStore(self.r, self.k("silences"), clock)

    def k(self, *parts: str) -> str:
        return self.ns + ":".join(parts)

    # -- alerts -------------------------------------------------------------------
    def alert(self, fingerprint: str) -> Alert | None:
        raw = self.r.get(self.k("alert", fingerprint))
        return Alert.from_json(raw) if raw else None

    def alerts(self, fingerprints: list[str]) -> list[Alert]:
        if not fingerprints:
            return []
        return [Alert.from_json(v) for v in self.r.mget([self.k("alert", a) for a in fingerprints]) if v]

    def record(self, alert: Alert, groups: list[GroupRecord]) -> None:
        """Save the alert, keep it in the firing index, and add it to its groups (a new group waits for its
        first flush; an existing one keeps its schedule)."""
        p = self.r.pipeline()
        p.set(self.k("alert", alert.fingerprint), alert.to_json(), ex=ALERT_TTL)
        p.zadd(self.k("firing"), {alert.fingerprint: alert.ends_at})
        for g in groups:
            p.sadd(self.k("members", g.key), alert.fingerprint)
            p.setnx(self.k("group", g.key), json.dumps(dict(g.doc)))
            p.zadd(self.k("due"), {g.key: g.first_due}, nx=True)
        p.execute()

    def firing(self, now: float) -> list[Alert]:
        """Alerts not yet past their resolve timeout."""
        return self.alerts([a.decode() for a in self.r.zrangebyscore(self.k("firing"), now, "+inf")])

    # -- groups -------------------------------------------------------------------------
    def due(self, now: float) -> list[str]:
        return [g.decode() for g in self.r.zrangebyscore(self.k("due"), 0, now)]

    def group(self, key: str) -> dict[str, Any] | None:
        raw = self.r.get(self.k("group", key))
        return json.loads(raw) if raw else None

    def members(self, key: str) -> list[Alert]:
        return self.alerts([a.decode() for a in self.r.smembers(self.k("members", key))])

    def reschedule(self, key: str, at: float) -> None:
        self.r.zadd(self.k("due"), {key: at})

    def unschedule(self, key: str) -> None:
        self.r.zrem(self.k("due"), key)

    def retire(self, key: str, resolved: list[Alert]) -> None:
        """Forget a group whose alerts all resolved and were reported, and those alerts' firing entries."""
        p = self.r.pipeline()
        p.zrem(self.k("due"), key)
        p.delete(self.k("group", key), self.k("members", key))
        for a in resolved:
            p.zrem(self.k("firing"), a.fingerprint)
        p.execute()

    # -- the notification log --------------------------------------------------------------
    def last_sent(self, key: str, receiver: str, integration: str) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(self.r.get(self.k("nlog", key, receiver, integration)) or "{}")
        return entry

    def sent(self, key: str, receiver: str, integration: str, entry: Mapping[str, Any], keep: float) -> None:
        self.r.set(self.k("nlog", key, receiver, integration), json.dumps(dict(entry)), ex=int(keep))

    def clear(self) -> None:
        for key in self.r.scan_iter(self.ns + "*", count=1000):
            self.r.delete(key)
