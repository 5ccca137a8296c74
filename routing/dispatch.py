"""The router: anomaly events in, grouped, deduplicated, silenced and inhibited notifications out.

Alertmanager's dispatcher, with its state in Redis so a restarted (or
another) router carries on: alerts, groups with their next flush time, the
notification log (what was sent to which integration, when) and silences.
Broker-free: :meth:`Router.receive` takes an event, :meth:`Router.tick`
flushes due groups through a ``send`` callable that must not return before
the broker confirmed; the Celery bootstep in :mod:`workers.route` adapts it.
Times are wall-clock seconds from an injectable clock.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from typing import Any, Callable, Mapping

import redis

from harewatch.messages import Alert, AnomalyEvent, Notification, NotifiedAlert, routing_word
from harewatch.times import iso
from harewatch.routing.matchers import Matcher
from harewatch.routing.silences import Silence, SilenceStore, silenced
from harewatch.routing.tree import Route, RoutingConfig, alert_labels

log = logging.getLogger("harewatch.router")
MAX_ALERTS_PER_NOTIFICATION = 50


def _h(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def alert_fingerprint(labels: Mapping[str, str]) -> str:
    return _h(json.dumps(sorted(labels.items())))


class Router:
    """Alert state and dispatch for one routing config."""

    def __init__(self, routing: RoutingConfig, redis_url: str, prefix: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.rc = routing
        self.r: Any = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.ns = f"{prefix}hw:rt:"
        self.clock = clock
        self.routes = {route.path: route for route, _ in routing.root.walk()}
        self.silence_store = SilenceStore(self.r, self.k("silences"), clock)

    # -- keys -----------------------------------------------------------------
    def k(self, *parts: str) -> str:
        return self.ns + ":".join(parts)

    # -- incoming ---------------------------------------------------------------
    def receive(self, event: AnomalyEvent, now: float | None = None) -> list[str]:
        """Record one anomaly event as (part of) an alert; returns the groups it joined."""
        now = self.clock() if now is None else now
        labels = alert_labels(event)
        afp = alert_fingerprint(labels)
        key = self.k("alert", afp)
        old = self.r.get(key)
        before = Alert.from_json(old) if old else None
        alert = Alert(labels=labels, fingerprint=afp,
                      starts_at=before.starts_at if before and before.firing(now) else now,   # resolved: anew
                      ends_at=now + self.rc.resolve_timeout, last_seen=now,
                      events=(before.events if before else 0) + 1, anomaly=event)
        p = self.r.pipeline()
        p.set(key, alert.to_json(), ex=int(7 * 86400))
        p.zadd(self.k("firing"), {afp: alert.ends_at})
        joined = []
        for route in self.rc.match(labels):
            gk = _h(route.path + "|" + route.group_key(labels))
            joined.append(gk)
            gkey = self.k("group", gk)
            p.sadd(self.k("members", gk), afp)
            # a new group waits group_wait; an existing one keeps its schedule
            p.setnx(gkey, json.dumps({"route": route.path, "receiver": route.receiver,
                                      "group_labels": self._group_labels(route, labels), "created": now}))
            p.zadd(self.k("due"), {gk: now + route.group_wait}, nx=True)
        p.execute()
        return joined

    @staticmethod
    def _group_labels(route: Route, labels: Mapping[str, str]) -> dict[str, str]:
        if route.group_by_all:
            return dict(labels)
        return {k: labels.get(k, "") for k in route.group_by if k in labels}

    # -- silences (kept in the same Redis namespace; harewatch silence and the router share them) --------
    def add_silence(self, matchers: list[str], duration: float, comment: str = "", author: str = "",
                    start: float | None = None) -> Silence:
        return self.silence_store.add(matchers, duration, comment, author, start)

    def silences(self) -> list[Silence]:
        return self.silence_store.all()

    def expire_silence(self, sid: str) -> bool:
        return self.silence_store.expire(sid)

    # -- dispatch ---------------------------------------------------------------
    def tick(self, send: Callable[[str, Notification], None], now: float | None = None) -> int:
        """Flush every group whose time has come; returns how many notifications were sent."""
        now = self.clock() if now is None else now
        due = [g.decode() for g in self.r.zrangebyscore(self.k("due"), 0, now)]
        if not due:
            return 0
        silences = [s.parsed() for s in self.silences() if s.active(now)]
        firing_afps = [a.decode() for a in self.r.zrangebyscore(self.k("firing"), now, "+inf")]
        firing_labels = [Alert.from_json(v).labels for v in self.r.mget([self.k("alert", a) for a in firing_afps])
                         if v] if firing_afps and self.rc.inhibit_rules else []
        sent = 0
        for gk in due:
            sent += self._flush(gk, now, send, silences, firing_labels)
        return sent

    def _flush(self, gk: str, now: float, send: Callable[[str, Notification], None], silences: list[list[Matcher]],
               firing_labels: list[Mapping[str, str]]) -> int:
        graw = self.r.get(self.k("group", gk))
        route = self.routes.get(json.loads(graw)["route"]) if graw else None
        if graw is None or route is None:   # config changed under it: drop the stale group
            self.r.zrem(self.k("due"), gk)
            return 0
        group = json.loads(graw)
        afps = [a.decode() for a in self.r.smembers(self.k("members", gk))]
        alerts = [Alert.from_json(v) for v in self.r.mget([self.k("alert", a) for a in afps]) if v] if afps else []
        firing = [a for a in alerts if a.firing(now)]
        resolved = [a for a in alerts if not a.firing(now)]
        muted_route = self.rc.muted(route, now)
        visible_firing = []
        for a in firing:
            if silenced(a.labels, silences):
                continue
            if self.rc.inhibit_rules and self.rc.inhibited_by(a.labels, firing_labels) is not None:
                continue
            visible_firing.append(a)
        receiver = self.rc.receivers[route.receiver]
        sent = 0
        if not muted_route:
            for integ in receiver.integrations:
                nkey = self.k("nlog", gk, receiver.name, integ.key)
                last = json.loads(self.r.get(nkey) or "{}")
                fset = sorted(a.fingerprint for a in visible_firing)
                rset = sorted(a.fingerprint for a in resolved) if integ.send_resolved else []
                new_resolved = [x for x in rset if x in set(last.get("firing", []))]
                changed = fset != last.get("firing", []) and bool(fset)
                repeat_due = bool(fset) and now - last.get("sent_at", 0) >= route.repeat_interval
                if not (changed or repeat_due or new_resolved):
                    continue
                seq = last.get("seq", 0) + 1 if fset == last.get("firing") else 0   # a repeat is a new message
                note = self._notification(gk, group, route, receiver.name, integ, visible_firing,
                                          [a for a in resolved if a.fingerprint in new_resolved], now, seq)
                send(self._routing_key(integ.channel, visible_firing or resolved), note)
                self.r.set(nkey, json.dumps({"firing": fset, "sent_at": now, "id": note.id, "seq": seq}),
                           ex=int(max(route.repeat_interval * 2, 86400)))
                sent += 1
        # next flush, or forget a group whose alerts all resolved and were reported
        p = self.r.pipeline()
        if firing:
            p.zadd(self.k("due"), {gk: now + route.group_interval})
        else:
            p.zrem(self.k("due"), gk)
            p.delete(self.k("group", gk), self.k("members", gk))
            for a in resolved:
                p.zrem(self.k("firing"), a.fingerprint)
        p.execute()
        return sent

    @staticmethod
    def _routing_key(channel: str, alerts: list[Alert]) -> str:
        def word(s: str) -> str:
            return routing_word(s, "unknown")
        top = max(alerts, key=lambda a: a.labels.get("severity") == "critical") if alerts else None
        lab = top.labels if top else {}
        return f"{channel}.{word(lab.get('team', 'unowned'))}.{word(lab.get('type', ''))}.{word(lab.get('severity', ''))}"

    def _notification(self, gk: str, group: dict[str, Any], route: Route, receiver: str, integ: Any,
                      firing: list[Alert], resolved: list[Alert], now: float, seq: int = 0) -> Notification:
        alerts = [(a, "firing") for a in firing] + [(a, "resolved") for a in resolved]
        all_labels = [a.labels for a, _ in alerts]
        common = dict(set.intersection(*(set(lab.items()) for lab in all_labels))) if all_labels else {}
        ident = _h(f"{gk}|{receiver}|{integ.key}|{sorted(a.fingerprint for a in firing)}|"
                   f"{sorted(a.fingerprint for a in resolved)}|{seq}")
        shown = tuple(NotifiedAlert(status=status, labels=a.labels, fingerprint=a.fingerprint,
                                    starts_at=iso(a.starts_at),
                                    ends_at=iso(a.ends_at) if status == "resolved" else "0001-01-01T00:00:00Z",
                                    events=a.events, anomaly=a.anomaly)
                      for a, status in alerts[:MAX_ALERTS_PER_NOTIFICATION])
        return Notification(
            id=str(uuid.UUID(hex=(ident * 2)[:32])), receiver=receiver, channel=integ.channel,
            integration=integ.index, status="firing" if firing else "resolved",
            group_key=f"{route.path}:{route.group_key(all_labels[0]) if all_labels else '{}'}",
            group_labels=group.get("group_labels", {}), common_labels=common, alerts=shown,
            truncated_alerts=len(alerts) - len(shown), firing=len(firing), resolved=len(resolved), created=iso(now))

    def clear(self) -> None:
        for k in self.r.scan_iter(self.ns + "*", count=1000):
            self.r.delete(k)
