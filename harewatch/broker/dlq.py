"""Dead-letter queue tools: counts, inspection, replay and purge (``harewatch dlq``).

A DLQ message is a notification task as it was when it failed, with
``x-harewatch-*`` headers (reason, attempts, last error, first seen,
receiver, summary) or, when the broker dead-lettered it (delivery limit),
an ``x-death`` header.  Replay publishes each selected message back where
it came from (``alerts``, or ``anomalies`` for ``alerts.route.dlq``) with
its original routing key and the attempt count reset, waits
for the broker's confirm, and only then acks it in the DLQ: cut off at any
point, nothing is lost and at most the message in flight is doubled.
"""
from __future__ import annotations

import fnmatch
from contextlib import contextmanager
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pika

from harewatch.broker.connection import pika_parameters
from harewatch.errors import InvalidInput
from harewatch.messages import Notification
from harewatch.settings import Settings
from harewatch.broker.topology import Names


@dataclass
class DeadLetter:
    tag: int
    routing_key: str
    headers: dict[str, Any]
    body: bytes
    properties: Any

    @property
    def reason(self) -> str:
        if "x-harewatch-reason" in self.headers:
            return str(self.headers["x-harewatch-reason"])
        death = (self.headers.get("x-death") or [{}])[0]
        return str(death.get("reason", "unknown"))

    @property
    def attempts(self) -> int:
        if "x-harewatch-attempts" in self.headers:
            return int(self.headers["x-harewatch-attempts"])
        return int((self.headers.get("x-death") or [{}])[0].get("count", 0))

    @property
    def original_routing_key(self) -> str:
        if self.headers.get("x-original-routing-key"):
            return str(self.headers["x-original-routing-key"])
        death = (self.headers.get("x-death") or [{}])[0]
        keys = death.get("routing-keys") or [self.routing_key]
        return str(keys[0])

    def origin_exchange(self, names: Names) -> str:
        """Where the message was published before it died (its x-death), so a replay goes back there:
        ``anomalies`` for ``alerts.route.dlq``, ``alerts`` for a notification (also after broker-held
        retries, whose exchanges are only a waiting room)."""
        for death in self.headers.get("x-death") or []:
            ex = str(death.get("exchange") or "")
            if ex and ex != names.notify_dlx and not ex.startswith(names.p("notify.retry.")):
                return ex
        return names.alerts

    @property
    def first_seen(self) -> float | None:
        from harewatch.times import parse_ts
        if self.headers.get("x-harewatch-first-seen"):
            return parse_ts(self.headers["x-harewatch-first-seen"])
        death = (self.headers.get("x-death") or [{}])[0]
        t = death.get("time")
        return float(t.timestamp() if hasattr(t, "timestamp") else t) if t else None

    @classmethod
    def from_get(cls, method: Any, props: Any, body: bytes) -> "DeadLetter":
        """From a basic.get result."""
        return cls(method.delivery_tag, method.routing_key, dict(props.headers or {}), body, props)

    def task(self) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        try:
            args, kwargs, embed = json.loads(self.body)
            return args, kwargs, embed
        except (ValueError, TypeError):
            return [], {}, {}

    @property
    def notification(self) -> Notification | None:
        """The notification a DLQ'd task carried (None for anything else, e.g. an anomaly the router refused)."""
        raw = self.task()[1].get("notification")
        if not raw:
            return None
        try:
            return Notification.from_dict(raw)
        except InvalidInput:
            return None

    def fields(self) -> dict[str, str]:
        """What ``--where key=value`` filters on (glob patterns allowed)."""
        n = self.notification
        out = {"reason": self.reason, "receiver": str(n.receiver if n else self.headers.get("x-harewatch-receiver", "")),
               "status": n.status if n else "", "channel": n.channel if n else "",
               "routing_key": self.original_routing_key, "id": n.id if n else ""}
        for a in n.alerts if n else ():
            for k, v in a.labels.items():
                out.setdefault(k, str(v))
        return out

    def summary(self) -> dict[str, Any]:
        from harewatch.times import iso
        fs = self.first_seen
        n = self.notification
        return {"id": n.id if n else None, "reason": self.reason, "attempts": self.attempts,
                "last_error": str(self.headers.get("x-harewatch-last-error", "")),
                "first_seen": iso(fs) if fs else None, "receiver": self.fields()["receiver"],
                "routing_key": self.original_routing_key,
                "summary": str(self.headers.get("x-harewatch-summary") or self._summary())}

    def _summary(self) -> str:
        n = self.notification
        return f"{n.status} {len(n.alerts)} alert(s)" if n else f"{len(self.body)} bytes"


def matches(dl: DeadLetter, where: dict[str, str], older_than: float | None, now: float) -> bool:
    if older_than is not None:
        fs = dl.first_seen
        if fs is None or now - fs < older_than:
            return False
    f = dl.fields()
    return all(fnmatch.fnmatchcase(f.get(k, ""), v) for k, v in where.items())


class DLQ:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = Names(settings.prefix)

    def counts(self, topology: Any) -> list[dict[str, Any]]:
        """Messages and oldest age per DLQ (counts from the broker, age from the head message)."""
        out = []
        conn = pika.BlockingConnection(pika_parameters(self.settings))
        try:
            ch = conn.channel()
            for q in topology.dlqs:
                try:
                    n = ch.queue_declare(q, passive=True).method.message_count
                except pika.exceptions.ChannelClosedByBroker:
                    ch = conn.channel()
                    out.append({"queue": q, "messages": None, "oldest_age_s": None})
                    continue
                age = None
                if n:
                    m, props, body = ch.basic_get(q, auto_ack=False)
                    if m is not None:
                        fs = DeadLetter.from_get(m, props, body).first_seen
                        age = round(time.time() - fs) if fs else None
                        ch.basic_nack(m.delivery_tag, requeue=True)
                out.append({"queue": q, "messages": n, "oldest_age_s": age})
        finally:
            conn.close()
        return out

    @contextmanager
    def _scan(self, queue: str, limit: int | None = None
              ) -> Iterator[tuple[Any, Iterator[DeadLetter], Callable[[DeadLetter], None]]]:
        """(connection, the queue's messages one by one, ack). Every message not acked goes back to
        the queue at the end; if anything fails, closing the connection puts them back."""
        conn = pika.BlockingConnection(pika_parameters(self.settings))
        ch = conn.channel()
        pending: dict[int, DeadLetter] = {}

        def items() -> Iterator[DeadLetter]:
            n = ch.queue_declare(queue, passive=True).method.message_count
            for _ in range(n if limit is None else min(n, limit)):
                m, props, body = ch.basic_get(queue, auto_ack=False)
                if m is None:
                    return
                dl = DeadLetter.from_get(m, props, body)
                pending[dl.tag] = dl
                yield dl

        def ack(dl: DeadLetter) -> None:
            ch.basic_ack(dl.tag)
            pending.pop(dl.tag, None)

        try:
            yield conn, items(), ack
            for tag in pending:
                ch.basic_nack(tag, requeue=True)
        finally:
            conn.close()

    def show(self, queue: str, limit: int = 20) -> list[DeadLetter]:
        with self._scan(queue, limit) as (_, items, _ack):
            return list(items)

    def replay(self, queue: str, limit: int | None = None, where: dict[str, str] | None = None,
               older_than: float | None = None, dry_run: bool = False,
               on_each: Callable[[DeadLetter], None] | None = None) -> int:
        """Republish matching messages where they came from (confirmed), then ack each; returns how many."""
        now = time.time()
        done = 0
        with self._scan(queue) as (conn, items, ack):
            pub = conn.channel()
            pub.confirm_delivery()
            for dl in items:
                if (limit is not None and done >= limit) or not matches(dl, where or {}, older_than, now):
                    continue
                if not dry_run:
                    pub.basic_publish(dl.origin_exchange(self.names), dl.original_routing_key, *self._replay_copy(dl),
                                      mandatory=True)
                    ack(dl)       # only after the broker confirmed the copy
                done += 1
                if on_each:
                    on_each(dl)
        return done

    @staticmethod
    def _replay_copy(dl: DeadLetter) -> tuple[bytes, Any]:
        """The body (attempts reset) and properties of a replayed message."""
        args, kwargs, embed = dl.task()
        body = dl.body
        if kwargs:
            kwargs["attempt"] = 1
            kwargs["last_error"] = ""
            body = json.dumps([args, kwargs, embed]).encode()
        headers = {k: v for k, v in dl.headers.items() if not k.startswith("x-")}
        headers["x-harewatch-replayed"] = int(dl.headers.get("x-harewatch-replayed", 0)) + 1
        p = dl.properties
        return body, pika.BasicProperties(content_type=p.content_type, content_encoding=p.content_encoding,
                                          delivery_mode=2, correlation_id=p.correlation_id, headers=headers)

    def purge(self, queue: str, where: dict[str, str] | None = None, older_than: float | None = None) -> int:
        now = time.time()
        n = 0
        with self._scan(queue) as (_, items, ack):
            for dl in items:
                if matches(dl, where or {}, older_than, now):
                    ack(dl)
                    n += 1
        return n
