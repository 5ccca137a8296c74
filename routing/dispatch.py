"""The router: anomaly events in, grouped, deduplicated, silenced and inhibited notifications out.

Alertmanager's dispatcher. The decisions are here; the state (alerts, groups
with their next flush time, the notification log, silences) is kept by
:class:`~harewatch.routing.store.RouterStore` in Redis, so a restarted (or
another) router carries on. Broker-free: :meth:`Router.receive_batch` takes
:class:`~harewatch.messages.AnomalyEvent` values (one Redis round trip per
batch), :meth:`Router.tick` flushes every due group through a ``send``
callable that must not return before the broker confirmed them all (a fixed
number of round trips per flush, inhibition by index, see
:mod:`routing.inhibit`); :mod:`harewatch.workers.route` runs both in a worker.
Times are wall-clock seconds from an injectable clock.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence


from harewatch.errors import UnroutableMessage
from harewatch.messages import Alert, AnomalyEvent, Notification, NotifiedAlert, routing_word
from harewatch.times import iso
from harewatch.routing.matchers import Matcher
from harewatch.routing.silences import Silence, silenced
from harewatch.routing.inhibit import Inhibitor
from harewatch.routing.store import AlertUpdate, DueGroup, GroupRecord, PendingWrite, Placement, RouterStore, Settle
from harewatch.routing.tree import Route, RoutingConfig, alert_labels

log = logging.getLogger("harewatch.router")
MAX_ALERTS_PER_NOTIFICATION = 50
FLUSH_CHUNK = 50          # groups decided and sent together (a storm's first groups go out first)


def _h(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def alert_fingerprint(labels: Mapping[str, str]) -> str:
    return _h(json.dumps(sorted(labels.items())))


@dataclass(frozen=True)
class _Flush:
    """One due group as the flush sees it: what may be reported, before the notification log is read."""

    group: DueGroup
    route: Route
    visible: list[Alert]       # firing, neither silenced nor inhibited
    resolved: list[Alert]
    firing: bool               # any alert still firing, visible or not: the group lives on


Send = Callable[[Sequence[tuple[str, Notification]]], None]
"""Publishes notifications (routing key, notification) and returns once the broker confirmed them all."""


class Router:
    """Alertmanager's dispatcher for one routing config: grouping, group_wait / group_interval /
    repeat_interval, resolution, silences and inhibition. Its state is in :class:`RouterStore`.

    Intake (:meth:`receive_batch`) and flushing (:meth:`tick`) share nothing but Redis, so they may run
    in different threads or processes, each with its own Router.
    """

    def __init__(self, routing: RoutingConfig, redis_url: str, prefix: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.rc = routing
        self.store = RouterStore(redis_url, prefix, clock)
        self.r = self.store.r          # the Redis client, for the lease the flusher holds
        self.clock = clock
        self.routes = {route.path: route for route, _ in routing.root.walk()}
        self._places: dict[tuple[Any, ...], Placement] = {}   # what an event's alert is and where it goes
        self._firing_labels: dict[str, Mapping[str, str]] = {}

    def k(self, *parts: str) -> str:
        return self.store.k(*parts)

    # -- incoming ---------------------------------------------------------------
    def receive(self, event: AnomalyEvent, now: float | None = None) -> list[str]:
        """Record one anomaly event as (part of) an alert; returns the groups it joined."""
        return self.receive_batch([(event, event.to_json())], now)[0]

    def receive_batch(self, events: Sequence[tuple[AnomalyEvent, str | bytes]],
                      now: float | None = None) -> list[list[str]]:
        """Record anomaly events (each with its JSON text, stored as is) in one Redis round trip;
        returns the groups each joined. Several events of one alert count as that many; the last wins."""
        pending, groups = self.receive_started(events, now)
        pending.wait()
        return groups

    def receive_started(self, events: Sequence[tuple[AnomalyEvent, str | bytes]],
                        now: float | None = None) -> tuple[PendingWrite, list[list[str]]]:
        """:meth:`receive_batch` without waiting for Redis: recorded once the returned write's ``wait()``
        returned (so intake parses the next batch while Redis records this one)."""
        now = self.clock() if now is None else now
        placed = [self._place(ev) for ev, _ in events]
        count: dict[str, int] = {}
        latest: dict[str, tuple[Placement, str | bytes, bool]] = {}
        for place, (ev, raw) in zip(placed, events):
            count[place.fingerprint] = count.get(place.fingerprint, 0) + 1
            latest[place.fingerprint] = (place, raw, ev.status == "resolved")
        updates = [AlertUpdate(place, count[fp], raw, resolved) for fp, (place, raw, resolved) in latest.items()]
        pending = self.store.record_started(updates, now, self.rc.resolve_timeout)
        return pending, [[g.key for g in place.groups] for place in placed]

    def _place(self, event: AnomalyEvent) -> Placement:
        """The alert an event belongs to and its groups (cached: a label set always routes the same)."""
        key = (event.metric, event.type, event.severity, event.team, frozenset(event.labels.items()))
        place = self._places.get(key)
        if place is None:
            if len(self._places) > 200_000:
                self._places.clear()
            labels = alert_labels(event)
            fp = alert_fingerprint(labels)
            place = Placement(fp, labels, tuple(
                GroupRecord(_h(route.path + "|" + route.group_key(labels)),
                            {"route": route.path, "receiver": route.receiver,
                             "group_labels": route.group_labels(labels)}, route.group_wait)
                for route in self.rc.match(labels)))
            self._places[key] = place
        return place

    # -- silences (kept beside the alerts; harewatch silence and the router share them) --------
    def add_silence(self, matchers: list[str], duration: float, comment: str = "", author: str = "",
                    start: float | None = None) -> Silence:
        return self.store.silences.add(matchers, duration, comment, author, start)

    def silences(self) -> list[Silence]:
        return self.store.silences.all()

    def expire_silence(self, sid: str) -> bool:
        return self.store.silences.expire(sid)

    # -- dispatch ---------------------------------------------------------------
    def next_due(self) -> float | None:
        """When the earliest group is due (None: no group is waiting)."""
        return self.store.next_due()

    def tick(self, send: Send, now: float | None = None) -> int:
        """Flush every group whose time has come, the longest due first, in chunks of
        :data:`FLUSH_CHUNK` groups; returns how many notifications were sent.

        A fixed number of Redis round trips per chunk whatever its size: read the due groups, their
        alerts and notification log; decide; read the events of the alerts to be reported; send every
        notification (``send`` returns once the broker confirmed them); then log them and reschedule.
        A crash before the log is written sends the same notifications again, with the same ids.
        """
        now = self.clock() if now is None else now
        due = self.store.due(now)             # earliest first
        if not due:
            return 0
        silences = [s.parsed() for s in self.silences() if s.active(now)]
        inhibitor = self._inhibitor(now) if self.rc.inhibit_rules else None
        return sum(self._flush(due[i:i + FLUSH_CHUNK], send, now, silences, inhibitor)
                   for i in range(0, len(due), FLUSH_CHUNK))

    def _flush(self, due: list[str], send: Send, now: float, silences: list[list[Matcher]],
               inhibitor: Inhibitor | None) -> int:
        flushes: list[_Flush] = []
        for group in self.store.load_due(due):
            route = self.routes.get(group.doc["route"]) if group.doc else None
            if group.doc is None or route is None:   # config changed under it: drop the stale group
                self.store.unschedule(group.key)
                continue
            flushes.append(self._decide(group, route, now, silences, inhibitor))
        logs = self.store.last_sent([(f.group.key, f.route.receiver, integ.key) for f in flushes
                                     for integ in self.rc.receivers[f.route.receiver].integrations])
        plans = []
        for f in flushes:
            receiver = self.rc.receivers[f.route.receiver]
            if self.rc.muted(f.route, now):
                continue
            for integ in receiver.integrations:
                decision = self._integration(f, integ, logs[(f.group.key, receiver.name, integ.key)], now)
                if decision is not None:
                    plans.append((f, integ, *decision))
        with_events = {a.fingerprint: a for a in self.store.events(
            {a.fingerprint: a for p in plans for a in (*p[2], *p[3])}.values())}
        notes: list[tuple[str, Notification]] = []
        sent_by_group: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {f.group.key: {} for f in flushes}
        for f, integ, firing, resolved, fset, seq in plans:
            note = self._notification(f.group.key, f.group.doc or {}, f.route, f.route.receiver, integ,
                                      [with_events[a.fingerprint] for a in firing],
                                      [with_events[a.fingerprint] for a in resolved], now, seq)
            notes.append((self._routing_key(integ.channel, firing or resolved), note))
            sent_by_group[f.group.key][(f.route.receiver, integ.key)] = {
                "firing": fset, "sent_at": now, "id": note.id, "seq": seq}
        unsent: UnroutableMessage | None = None
        if notes:
            try:
                send(notes)
            except UnroutableMessage as exc:
                if not exc.returned or len(exc.returned) == len(notes):
                    raise
                # some channel's queue is gone: what was routed is logged as sent (sending it again would
                # duplicate it on healthy channels); the groups of what came back stay due, to be retried
                unsent = exc
                for i in exc.returned:
                    f, integ = plans[i][0], plans[i][1]
                    sent_by_group[f.group.key].pop((f.route.receiver, integ.key), None)
        retry = {plans[i][0].group.key for i in unsent.returned} if unsent is not None else set()
        # next flush, or forget a group whose alerts all resolved and were reported
        self.store.settle([Settle(f.group.key, sent_by_group[f.group.key], max(f.route.repeat_interval * 2, 86400),
                                  [] if f.firing or f.group.key in retry else [a.fingerprint for a in f.resolved],
                                  f.group.gone, now if f.group.key in retry else now + f.route.group_interval)
                           for f in flushes], now)
        if unsent is not None:
            raise unsent       # the flusher logs it and tries again after a back-off
        return len(notes)

    def _inhibitor(self, now: float) -> Inhibitor:
        """The inhibit rules over the alerts firing now (label sets cached: a fingerprint's never change)."""
        fps = self.store.firing_fingerprints(now)
        known = self._firing_labels
        missing = [fp for fp in fps if fp not in known]
        for a in self.store.alerts(missing):
            known[a.fingerprint] = a.labels
        self._firing_labels = {fp: known[fp] for fp in fps if fp in known}
        return self.rc.inhibitor(self._firing_labels.values())

    def _decide(self, group: DueGroup, route: Route, now: float, silences: list[list[Matcher]],
                inhibitor: Inhibitor | None) -> _Flush:
        firing = [a for a in group.alerts if a.firing(now)]
        resolved = [a for a in group.alerts if not a.firing(now)]
        visible = [a for a in firing if not silenced(a.labels, silences)
                   and not (inhibitor is not None and inhibitor.inhibited_by(a.labels) is not None)]
        return _Flush(group, route, visible, resolved, bool(firing))

    def _integration(self, f: _Flush, integ: Any, last: Mapping[str, Any], now: float
                     ) -> tuple[list[Alert], list[Alert], list[str], int] | None:
        """Whether this integration is notified now, and with what: (firing, resolved, fingerprints, seq)."""
        visible, resolved = f.visible, f.resolved
        fset = sorted(a.fingerprint for a in visible)
        last_firing = list(last.get("firing", []))
        rset = sorted(a.fingerprint for a in resolved) if integ.send_resolved else []
        new_resolved = set(rset) & set(last_firing)
        changed = fset != last_firing and bool(fset)
        repeat_due = bool(fset) and now - float(last.get("sent_at", 0)) >= f.route.repeat_interval
        if not (changed or repeat_due or new_resolved):
            return None
        seq = int(last.get("seq", 0)) + 1 if fset == last_firing else 0   # a repeat is a new message
        return visible, [a for a in resolved if a.fingerprint in new_resolved], fset, seq

    @staticmethod
    def _routing_key(channel: str, alerts: list[Alert]) -> str:
        def word(s: str) -> str:
            return routing_word(s, "unknown")
        top = max(alerts, key=lambda a: a.labels.get("severity") == "critical") if alerts else None
        lab = top.labels if top else {}
        return f"{channel}.{word(lab.get('team', 'unowned'))}.{word(lab.get('type', ''))}.{word(lab.get('severity', ''))}"

    def _notification(self, gk: str, group: Mapping[str, Any], route: Route, receiver: str, integ: Any,
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
