"""The router: anomaly events in, grouped, deduplicated, silenced and inhibited notifications out.

Alertmanager's dispatcher. The decisions are here; the state (alerts, groups
with their next flush time, the notification log, silences) is kept by
:class:`~harewatch.routing.store.RouterStore` in Redis, so a restarted (or
another) router carries on. Broker-free: :meth:`Router.receive` takes an
:class:`~harewatch.messages.AnomalyEvent`, :meth:`Router.tick` flushes due
groups through a ``send`` callable that must not return before the broker
confirmed; the Celery bootstep in :mod:`harewatch.workers.route` adapts it.
Times are wall-clock seconds from an injectable clock.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from typing import Any, Callable, Mapping


from harewatch.messages import Alert, AnomalyEvent, Notification, NotifiedAlert, routing_word
from harewatch.times import iso
from harewatch.routing.matchers import Matcher
from harewatch.routing.silences import Silence, silenced
from harewatch.routing.store import GroupRecord, RouterStore
from harewatch.routing.tree import Route, RoutingConfig, alert_labels

log = logging.getLogger("harewatch.router")
MAX_ALERTS_PER_NOTIFICATION = 50


def _h(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def alert_fingerprint(labels: Mapping[str, str]) -> str:
    return _h(json.dumps(sorted(labels.items())))


class Router:
    """Alertmanager's dispatcher for one routing config: grouping, group_wait / group_interval /
    repeat_interval, resolution, silences and inhibition. Its state is in :class:`RouterStore`."""

    def __init__(self, routing: RoutingConfig, redis_url: str, prefix: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.rc = routing
        self.store = RouterStore(redis_url, prefix, clock)
        self.r = self.store.r          # the Redis client, for the lease the router consumer holds
        self.clock = clock
        self.routes = {route.path: route for route, _ in routing.root.walk()}

    def k(self, *parts: str) -> str:
        return self.store.k(*parts)

    # -- incoming ---------------------------------------------------------------
    def receive(self, event: AnomalyEvent, now: float | None = None) -> list[str]:
        """Record one anomaly event as (part of) an alert; returns the groups it joined."""
        now = self.clock() if now is None else now
        labels = alert_labels(event)
        afp = alert_fingerprint(labels)
        before = self.store.alert(afp)
        alert = Alert(labels=labels, fingerprint=afp,
                      starts_at=before.starts_at if before and before.firing(now) else now,   # resolved: anew
                      ends_at=now + self.rc.resolve_timeout, last_seen=now,
                      events=(before.events if before else 0) + 1, anomaly=event)
        groups = [GroupRecord(_h(route.path + "|" + route.group_key(labels)),
                              {"route": route.path, "receiver": route.receiver,
                               "group_labels": self._group_labels(route, labels), "created": now},
                              now + route.group_wait)
                  for route in self.rc.match(labels)]
        self.store.record(alert, groups)
        return [g.key for g in groups]

    @staticmethod
    def _group_labels(route: Route, labels: Mapping[str, str]) -> dict[str, str]:
        if route.group_by_all:
            return dict(labels)
        return {k: labels.get(k, "") for k in route.group_by if k in labels}

    # -- silences (kept beside the alerts; harewatch silence and the router share them) --------
    def add_silence(self, matchers: list[str], duration: float, comment: str = "", author: str = "",
                    start: float | None = None) -> Silence:
        return self.store.silences.add(matchers, duration, comment, author, start)

    def silences(self) -> list[Silence]:
        return self.store.silences.all()

    def expire_silence(self, sid: str) -> bool:
        return self.store.silences.expire(sid)

    # -- dispatch ---------------------------------------------------------------
    def tick(self, send: Callable[[str, Notification], None], now: float | None = None) -> int:
        """Flush every group whose time has come; returns how many notifications were sent."""
        now = self.clock() if now is None else now
        due = self.store.due(now)
        if not due:
            return 0
        silences = [s.parsed() for s in self.silences() if s.active(now)]
        firing_labels = [a.labels for a in self.store.firing(now)] if self.rc.inhibit_rules else []
        sent = 0
        for gk in due:
            sent += self._flush(gk, now, send, silences, firing_labels)
        return sent

    def _flush(self, gk: str, now: float, send: Callable[[str, Notification], None], silences: list[list[Matcher]],
               firing_labels: list[Mapping[str, str]]) -> int:
        group = self.store.group(gk)
        route = self.routes.get(group["route"]) if group else None
        if group is None or route is None:   # config changed under it: drop the stale group
            self.store.unschedule(gk)
            return 0
        alerts = self.store.members(gk)
        firing = [a for a in alerts if a.firing(now)]
        resolved = [a for a in alerts if not a.firing(now)]
        visible_firing = [a for a in firing if not silenced(a.labels, silences) and not (
            self.rc.inhibit_rules and self.rc.inhibited_by(a.labels, firing_labels) is not None)]
        receiver = self.rc.receivers[route.receiver]
        sent = 0
        if not self.rc.muted(route, now):
            for integ in receiver.integrations:
                last = self.store.last_sent(gk, receiver.name, integ.key)
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
                self.store.sent(gk, receiver.name, integ.key, {"firing": fset, "sent_at": now, "id": note.id,
                                                                "seq": seq}, max(route.repeat_interval * 2, 86400))
                sent += 1
        # next flush, or forget a group whose alerts all resolved and were reported
        if firing:
            self.store.reschedule(gk, now + route.group_interval)
        else:
            self.store.retire(gk, resolved)
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
        self.store.clear()
