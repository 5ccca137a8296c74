"""Declaring the topology on a broker, idempotently, reporting drift instead of crashing."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from amqp import exceptions as amqp_exc

from harewatch.broker.connection import kombu_connection, redact_url
from harewatch.errors import BrokerUnreachable
from harewatch.settings import Settings
from harewatch.broker.management import Management
from harewatch.broker.topology import INFORMATIONAL_ARGS, Topology, exchange_args, queue_args


@dataclass(frozen=True)
class Drift:
    """One argument that differs between the broker and the config."""

    kind: str  # "queue" | "exchange"
    name: str
    argument: str
    current: Any
    wanted: Any

    def __str__(self) -> str:
        return (f"{self.kind} {self.name!r}: argument {self.argument} is {self.current!r} on the broker "
                f"but the config wants {self.wanted!r}")


@dataclass(frozen=True)
class Outcome:
    kind: str
    name: str
    status: str  # created | kept | drift
    drifts: tuple[Drift, ...] = ()


_INEQUIV = re.compile(r"inequivalent arg '([^']+)' for (queue|exchange) '([^']+)' in vhost '[^']*': "
                      r"received (.*?) but current is (.*)$")


def _parse_precondition(text: str, kind: str, name: str, wanted_args: dict[str, Any]) -> Drift:
    m = _INEQUIV.search(text)
    if not m:
        return Drift(kind, name, "?", text, "")
    arg = m.group(1)
    return Drift(kind, name, arg, m.group(5).strip(), wanted_args.get(arg, m.group(4)))


def _norm(v: Any) -> Any:
    return str(v) if v is not None else None


def _diff(kind: str, name: str, current: dict[str, Any], wanted: dict[str, Any]) -> list[Drift]:
    out = []
    for key in sorted(set(current) | set(wanted)):
        if key in INFORMATIONAL_ARGS:
            continue
        if _norm(current.get(key)) != _norm(wanted.get(key)):
            out.append(Drift(kind, name, key, current.get(key), wanted.get(key)))
    return out


def declare(topology: Topology, settings: Settings) -> list[Outcome]:
    """Create what is missing, keep what matches, report what drifted.

    Never raises on drift: each drifted entity is an ``Outcome`` with status
    ``drift`` listing every differing argument (read through the management
    API when it is reachable, else from the broker's PRECONDITION_FAILED text).
    """
    mgmt = Management(settings.management_url)
    vhost = settings.vhost
    outcomes: list[Outcome] = []
    try:
        conn = kombu_connection(settings)
        conn.connect()
    except Exception as exc:  # noqa: BLE001 - any connect failure means unreachable
        raise BrokerUnreachable(f"cannot connect to RabbitMQ at {redact_url(settings.amqp_url)}: {exc}") from None
    with conn:
        channel = conn.channel()

        def fresh() -> Any:
            nonlocal channel
            try:
                channel.close()
            except Exception:  # noqa: BLE001
                pass
            channel = conn.channel()
            return channel

        def exists(kind: str, obj: Any) -> bool:
            try:
                if kind == "exchange":
                    channel.exchange_declare(obj.name, obj.type, passive=True)
                else:
                    channel.queue_declare(obj.name, passive=True)
                return True
            except amqp_exc.NotFound:
                fresh()
                return False

        def drifts_of(kind: str, obj: Any, wanted: dict[str, Any], text: str) -> list[Drift]:
            try:
                cur = mgmt.exchange(vhost, obj.name) if kind == "exchange" else mgmt.queue(vhost, obj.name)
            except Exception:  # noqa: BLE001 - management is optional here
                cur = None
            if cur is not None:
                current = dict(cur.get("arguments") or {})
                want = dict(wanted)
                if kind == "exchange":
                    current["type"], want["type"] = cur.get("type"), obj.type
                else:
                    current.setdefault("x-queue-type", cur.get("type"))
                    current["durable"], want["durable"] = cur.get("durable"), True
                found = _diff(kind, obj.name, current, want)
                if found:
                    return found
            return [_parse_precondition(text, kind, obj.name, wanted)]

        for ex in topology.exchanges:
            had = exists("exchange", ex)
            try:
                channel.exchange_declare(ex.name, ex.type, durable=True, auto_delete=False,
                                         arguments=exchange_args(ex) or {})
                outcomes.append(Outcome("exchange", ex.name, "kept" if had else "created"))
            except amqp_exc.PreconditionFailed as exc:
                fresh()
                outcomes.append(Outcome("exchange", ex.name, "drift",
                                        tuple(drifts_of("exchange", ex, dict(exchange_args(ex) or {}), str(exc)))))
        before = _partitions_bound(topology, mgmt, vhost)       # read before new partitions are bound
        for src, key, dest in topology.exchange_bindings:
            channel.exchange_bind(dest, src, routing_key=key)
        for hash_ex, bound in before.items():   # fewer partitions: the old ones get no more readings
            for old in sorted(bound - set(topology.partitions[hash_ex])):
                channel.queue_unbind(old, hash_ex, routing_key="1")
        for q in topology.queues:
            had = exists("queue", q)
            try:
                channel.queue_declare(q.name, durable=True, auto_delete=False, exclusive=False,
                                      arguments=queue_args(q))
                status = "kept" if had else "created"
            except amqp_exc.PreconditionFailed as exc:
                fresh()
                outcomes.append(Outcome("queue", q.name, "drift",
                                        tuple(drifts_of("queue", q, dict(queue_args(q)), str(exc)))))
                continue
            for b in q.bindings:
                channel.queue_bind(q.name, b.exchange.name, routing_key=b.routing_key or "")
            outcomes.append(Outcome("queue", q.name, status))
        try:
            channel.close()
        except Exception:  # noqa: BLE001
            pass
    outcomes += _partition_drift(topology, mgmt, vhost, before)
    return outcomes


def _partitions_bound(topology: Topology, mgmt: Management, vhost: str) -> dict[str, set[str]]:
    """The queues each hash exchange of the topology feeds now (before this declare)."""
    if not topology.partitions:
        return {}
    try:
        bindings = mgmt.bindings(vhost)
    except Exception:  # noqa: BLE001 - management is optional here
        return {}
    out: dict[str, set[str]] = {}
    for b in bindings:
        if b.get("source") in topology.partitions and b.get("destination_type") == "queue":
            out.setdefault(b["source"], set()).add(b["destination"])
    return out


def _partition_drift(topology: Topology, mgmt: Management, vhost: str,
                     before: dict[str, set[str]]) -> list[Outcome]:
    """A number of partitions that changed: the series are hashed anew (a series' readings may sit in two
    partitions for a while), and queues left over from the old number still hold (or, unpartitioned,
    still receive) readings that no configured worker consumes. Reported with how to migrate."""
    out = []
    for ex, queues in topology.partitions.items():
        was = before.get(ex)
        if was and was != set(queues):
            out.append(Outcome("exchange", ex, "drift", (Drift(
                "exchange", ex, "partitions", len(was),
                f"{len(queues)}: series are hashed anew, so a series' older readings may still wait in its old "
                f"partition while new ones arrive in another; to keep every series in order, stop its producers "
                f"until the workers drained the partitions, then start them again"),)))
    try:
        existing = {q["name"]: q for q in mgmt.queues(vhost)}
    except Exception:  # noqa: BLE001 - management is optional here
        return out
    wanted = {q.name for q in topology.queues}
    for name in sorted(existing):
        if name in wanted:
            continue
        base, _, k = name.rpartition(".")
        configured = topology.partitions.get(base) if k.isdigit() else topology.partitions.get(name)
        unpartitioned_now = k.isdigit() and not configured and base in wanted
        if configured is None and not unpartitioned_now:
            continue
        held = existing[name].get("messages", 0)
        how = (f"let a worker drain it ({held} messages now), then delete it in the management UI"
               + (f", and the exchange {base} too" if unpartitioned_now else ""))
        out.append(Outcome("queue", name, "drift", (Drift("queue", name, "partitions", "left over",
                                                          f"not in the config: {how}"),)))
    return out


def declare_queues(settings: Settings, queues: Iterable[Any]) -> None:
    """Declare some queues of the topology (their exchanges and bindings too), exactly as it has them:
    what a consumer does before consuming, so it never starts on a queue that is missing."""
    with kombu_connection(settings) as conn:
        for q in queues:
            q(conn.default_channel).declare()
