"""The whole broker topology of harewatch, as data.

Every exchange, queue and binding is a kombu value built here from the
config; declaring, drift-checking, drawing and exporting definitions all
read these values.  Derived names come from the functions below and nowhere
else (``queue_name``, ``dlq_name``, ...).

>>> names = Names(prefix="prod.")
>>> names.notify_queue("slack"), names.dlq("notify.slack")
('prod.notify.slack', 'prod.notify.slack.dlq')
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from kombu import Exchange, Queue, binding

from harewatch.durations import format_duration

DELIVERY_LIMIT_DETECT = 5
DELIVERY_LIMIT_ROUTE = 5
DELIVERY_LIMIT_NOTIFY = 20
# Broker-held retry delays for notifications (seconds).  A notification that
# failed transiently waits in the smallest tier at least as long as its backoff.
RETRY_TIERS: tuple[int, ...] = (1, 5, 30, 120, 600, 1800)


@dataclass(frozen=True)
class Names:
    """Every harewatch broker name, with the configured prefix applied."""

    prefix: str = ""

    def p(self, name: str) -> str:
        return f"{self.prefix}{name}"

    # exchanges
    @property
    def readings(self) -> str:
        return self.p("readings")

    @property
    def readings_unrouted(self) -> str:
        return self.p("readings.unrouted")

    @property
    def readings_invalid(self) -> str:
        """Both the fanout exchange and the queue that collect invalid readings."""
        return self.p("readings.invalid")

    @property
    def anomalies(self) -> str:
        return self.p("anomalies")

    @property
    def alerts(self) -> str:
        return self.p("alerts")

    @property
    def notify_dlx(self) -> str:
        return self.p("notify.dlx")

    def retry_exchange(self, seconds: int) -> str:
        return self.p(f"notify.retry.{format_duration(seconds)}")

    # queues
    @property
    def detect_default(self) -> str:
        return self.p("detect.default")

    def detect_queue(self, base: str) -> str:
        """``detect.<metric>`` (or a shared queue named in the metric's settings)."""
        return self.p(base if base.startswith("detect.") else f"detect.{base}")

    def partition_queue(self, base: str, k: int) -> str:
        """``detect.<metric>.<k>``: partition ``k`` of a partitioned metric's detect queue."""
        return f"{self.detect_queue(base)}.{k}"

    @property
    def alerts_route(self) -> str:
        return self.p("alerts.route")

    def notify_queue(self, channel: str) -> str:
        return self.p(f"notify.{channel}")

    def dlq(self, queue: str) -> str:
        """The dead-letter queue of a queue name that already has the prefix."""
        return f"{queue}.dlq"

    def retry_queue(self, seconds: int) -> str:
        return self.retry_exchange(seconds)

    @property
    def tasks(self) -> str:
        """Celery's own task queue (refits, periodic checks)."""
        return self.p("harewatch.tasks")

    @property
    def router_ticks(self) -> str:
        return self.p("alerts.flush")


def quorum_args(description: str, dlx: str | None = None, dl_key: str | None = None,
                delivery_limit: int | None = None, **extra: Any) -> dict[str, Any]:
    """Arguments of a durable quorum queue; ``description`` shows in the management UI."""
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    if dlx is not None:
        args["x-dead-letter-exchange"] = dlx
        # keep a message until the dead-letter target has confirmed it
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
        if dl_key is not None:
            args["x-dead-letter-routing-key"] = dl_key
    if delivery_limit is not None:
        args["x-delivery-limit"] = delivery_limit
    args.update(extra)
    args["description"] = description
    return args


# Arguments RabbitMQ itself does not check on redeclare; drift ignores them.
INFORMATIONAL_ARGS = {"description"}


@dataclass
class Topology:
    """Exchanges, queues (with their bindings) and their purpose, built from config."""

    names: Names
    exchanges: list[Exchange] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)
    notify_queues: dict[str, Queue] = field(default_factory=dict)   # channel -> notify.<channel>
    exchange_bindings: list[tuple[str, str, str]] = field(default_factory=list)   # (source, key, destination)
    partitions: dict[str, list[str]] = field(default_factory=dict)   # hash exchange -> its partition queues

    def exchange(self, name: str) -> Exchange:
        return next(e for e in self.exchanges if e.name == name)

    def queue(self, name: str) -> Queue:
        return next(q for q in self.queues if q.name == name)

    def bindings(self) -> Iterable[tuple[str, str, str]]:
        """(exchange, routing key, queue) for every binding."""
        for q in self.queues:
            for b in q.bindings:
                yield (b.exchange.name, b.routing_key or "", q.name)

    @property
    def dlqs(self) -> list[str]:
        return [q.name for q in self.queues if q.name.endswith(".dlq")]


def build_topology(metric_queues: dict[str, list[str]], channels: Iterable[str],
                   prefix: str = "", partitions: dict[str, int] | None = None) -> Topology:
    """The topology of DESIGN §1 for the given detect queues and notification channels.

    ``metric_queues`` maps a detect queue base name (``detect.cpu_util``) to the
    metrics routed into it; ``partitions`` maps a base name to its number of
    partitions when there are several: then ``detect.<metric>`` is an
    ``x-consistent-hash`` exchange bound to ``readings`` that spreads the
    routing keys over the queues ``detect.<metric>.<k>`` (plugin
    ``rabbitmq_consistent_hash_exchange``, shipped with RabbitMQ).
    """
    n = Names(prefix)
    t = Topology(names=n)

    ex_invalid = Exchange(n.readings_invalid, "fanout", durable=True)
    ex_unrouted = Exchange(n.readings_unrouted, "fanout", durable=True)
    ex_readings = Exchange(n.readings, "topic", durable=True,
                           arguments={"alternate-exchange": n.readings_unrouted})
    ex_anomalies = Exchange(n.anomalies, "topic", durable=True)
    ex_alerts = Exchange(n.alerts, "topic", durable=True)
    ex_dlx = Exchange(n.notify_dlx, "direct", durable=True)
    t.exchanges = [ex_invalid, ex_unrouted, ex_readings, ex_anomalies, ex_alerts, ex_dlx]
    t.descriptions.update({
        n.readings: "Metric readings in; routing key <metric>.<source...>",
        n.readings_unrouted: "Readings for metrics without their own queue (alternate exchange)",
        n.readings_invalid: "Readings that could not be accepted, reason in headers",
        n.anomalies: "Anomaly events; routing key <team>.<type>.<severity>",
        n.alerts: "Router decisions; routing key <channel>.<team>.<type>.<severity>",
        n.notify_dlx: "Dead letters of the router and notifiers; routing key = source queue",
    })

    def add(q: Queue) -> None:
        t.queues.append(q)
        t.descriptions[q.name] = queue_args(q)["description"]

    add(Queue(n.readings_invalid, durable=True, bindings=[binding(ex_invalid)],
              queue_arguments=quorum_args("Invalid readings, reason in header x-harewatch-reason; inspect, fix the producer")))
    # one active consumer per detect queue keeps each series' points in order (DESIGN §3);
    # more workers on a queue are hot standbys that take over at once
    detect_args: dict[str, Any] = dict(dlx=n.readings_invalid, delivery_limit=DELIVERY_LIMIT_DETECT,
                       **{"x-single-active-consumer": True})
    for base in sorted(metric_queues):
        metrics = sorted(metric_queues[base])
        qname = n.detect_queue(base)
        count = (partitions or {}).get(base, 1)
        if count > 1:
            ex_hash = Exchange(qname, "x-consistent-hash", durable=True)
            t.exchanges.append(ex_hash)
            t.descriptions[qname] = (f"Spreads readings of {', '.join(metrics)} over {count} partitions by "
                                     f"consistent hashing of the routing key")
            t.exchange_bindings += [(n.readings, f"{m}.#", qname) for m in metrics]
            t.partitions[qname] = []
            for k in range(count):
                pq = n.partition_queue(base, k)
                t.partitions[qname].append(pq)
                add(Queue(pq, durable=True, bindings=[binding(ex_hash, routing_key="1")],
                          queue_arguments=quorum_args(f"Partition {k} of {count} of the readings of "
                                                      f"{', '.join(metrics)} awaiting detection", **detect_args)))
            continue
        add(Queue(qname, durable=True,
                  bindings=[binding(ex_readings, routing_key=f"{m}.#") for m in metrics],
                  queue_arguments=quorum_args(f"Readings of {', '.join(metrics)} awaiting detection", **detect_args)))
    add(Queue(n.detect_default, durable=True, bindings=[binding(ex_unrouted)],
              queue_arguments=quorum_args("Readings of metrics without their own queue, awaiting detection",
                                          **detect_args)))

    add(Queue(n.alerts_route, durable=True, bindings=[binding(ex_anomalies, routing_key="#")],
              queue_arguments=quorum_args("Anomalies awaiting the router (grouping, silences, inhibition)",
                                          dlx=n.notify_dlx, dl_key=n.alerts_route,
                                          delivery_limit=DELIVERY_LIMIT_ROUTE,
                                          **{"x-single-active-consumer": True})))
    add(Queue(n.dlq(n.alerts_route), durable=True, bindings=[binding(ex_dlx, routing_key=n.alerts_route)],
              queue_arguments=quorum_args("Anomalies the router could not handle; replay with harewatch dlq replay")))

    for ch in sorted(set(channels)):
        qn = n.notify_queue(ch)
        t.notify_queues[ch] = Queue(qn, durable=True, bindings=[binding(ex_alerts, routing_key=f"{ch}.#")],
                                    queue_arguments=quorum_args(f"Notifications waiting to be sent by {ch}",
                                                                dlx=n.notify_dlx, dl_key=qn,
                                                                delivery_limit=DELIVERY_LIMIT_NOTIFY))
        add(t.notify_queues[ch])
        add(Queue(n.dlq(qn), durable=True, bindings=[binding(ex_dlx, routing_key=qn)],
                  queue_arguments=quorum_args(f"{ch} notifications that failed for good; "
                                              f"harewatch dlq show/replay {qn}.dlq")))

    for tier in RETRY_TIERS:
        ex = Exchange(n.retry_exchange(tier), "fanout", durable=True)
        t.exchanges.append(ex)
        t.descriptions[ex.name] = f"Notifications waiting {format_duration(tier)} before a retry"
        add(Queue(n.retry_queue(tier), durable=True, bindings=[binding(ex)],
                  queue_arguments=quorum_args(
                      f"Notifications waiting {format_duration(tier)} before a retry (back to alerts)",
                      dlx=n.alerts, **ttl_arg(tier))))

    add(Queue(n.tasks, durable=True, queue_arguments=quorum_args(
        "harewatch internal tasks: model refits, missing-data checks, router flushes")))
    return t


def topology_from_config(cfg: Any, prefix: str = "") -> Topology:
    """:func:`build_topology` for a loaded :class:`routing.config.Config`."""
    channels = set(cfg.channels)
    routing = getattr(cfg, "routing", None)
    if routing is not None:
        channels |= set(routing.channels())
    return build_topology(cfg.detect_queues(), channels, prefix, cfg.partitions())


def ttl_arg(seconds: float) -> dict[str, Any]:
    """A queue's message TTL as an x-argument (milliseconds)."""
    return {"x-message-ttl": int(seconds * 1000)}


def queue_args(q: Queue) -> dict[str, Any]:
    """A kombu Queue's x-arguments (kombu sets the attribute dynamically)."""
    return dict(getattr(q, "queue_arguments", None) or {})


def exchange_args(ex: Exchange) -> dict[str, Any]:
    """A kombu Exchange's arguments."""
    return dict(getattr(ex, "arguments", None) or {})


# -- drawing -------------------------------------------------------------
def render_tree(t: Topology) -> str:
    """The topology as a readable tree: exchange -> (routing key) -> queue [arguments]."""
    by_ex: dict[str, list[tuple[str, str]]] = {}
    for ex_name, key, q_name in t.bindings():
        by_ex.setdefault(ex_name, []).append((key, q_name))
    lines: list[str] = []
    for src, key, dest in t.exchange_bindings:
        by_ex.setdefault(src, []).append((key, dest))
    for ex in t.exchanges:
        extra = ""
        if exchange_args(ex) and "alternate-exchange" in exchange_args(ex):
            extra = f", alternate-exchange={exchange_args(ex)['alternate-exchange']}"
        lines.append(f"[{ex.name}] {ex.type}{extra}  - {t.descriptions.get(ex.name, '')}")
        for key, qn in by_ex.get(ex.name, []):
            if qn in t.partitions:
                lines.append(f"  --'{key}'--> [{qn}] (exchange)")
                continue
            q = t.queue(qn)
            args = {k: v for k, v in queue_args(q).items() if k not in INFORMATIONAL_ARGS}
            arg_s = ", ".join(f"{k.removeprefix('x-')}={v}" for k, v in args.items())
            label = f"'{key}'" if key else "(all)"
            lines.append(f"  --{label}--> {qn}  ({arg_s})")
            lines.append(f"        {t.descriptions.get(qn, '')}")
    unbound = [q for q in t.queues if not q.bindings]
    for q in unbound:
        lines.append(f"(default exchange) --'{q.name}'--> {q.name}  - {t.descriptions.get(q.name, '')}")
    return "\n".join(lines)


# -- definitions export ----------------------------------------------------
COMPONENT_PERMISSIONS = {
    # component: (configure, write, read) regexes over unprefixed names
    "producer": ("^$", r"^{p}readings$", "^$"),
    "detector": (r"^({p}detect\..*|{p}harewatch\.tasks|celery.*|amq\.gen.*)$",
                 r"^({p}anomalies|{p}readings\.invalid|{p}harewatch\.tasks|celery.*|amq\.gen.*)$",
                 r"^({p}detect\..*|{p}harewatch\.tasks|celery.*|amq\.gen.*)$"),
    "router": (r"^({p}alerts\.route|{p}harewatch\.tasks|celery.*|amq\.gen.*)$",
               r"^({p}alerts|{p}harewatch\.tasks|celery.*|amq\.gen.*)$",
               r"^({p}alerts\.route|{p}harewatch\.tasks|celery.*|amq\.gen.*)$"),
    "notifier": (r"^({p}notify\..*|celery.*|amq\.gen.*)$",
                 r"^({p}notify\.retry\..*|{p}notify\.dlx|celery.*|amq\.gen.*)$",
                 r"^({p}notify\..*|celery.*|amq\.gen.*)$"),
    "operator": (".*", ".*", ".*"),
}


def rabbit_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` hash, for definitions files."""
    import base64
    import hashlib
    import os
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def export_definitions(t: Topology, vhost: str = "/", users: dict[str, str] | None = None,
                       user_prefix: str = "harewatch-") -> dict[str, Any]:
    """A RabbitMQ definitions document for the topology (importable in the management UI).

    ``users`` maps component (producer, detector, router, notifier, operator)
    to a password; each gets a ``harewatch-<component>`` user with the least
    permissions it needs on ``vhost``.
    """
    doc: dict[str, Any] = {
        "rabbit_version": "3.10.0",
        "vhosts": [{"name": vhost, "description": "harewatch anomaly alerting", "tags": []}],
        "users": [],
        "permissions": [],
        "exchanges": [
            {"name": e.name, "vhost": vhost, "type": e.type, "durable": True, "auto_delete": False,
             "internal": False, "arguments": dict(exchange_args(e) or {})}
            for e in t.exchanges
        ],
        "queues": [
            {"name": q.name, "vhost": vhost, "durable": True, "auto_delete": False,
             "arguments": dict(queue_args(q))}
            for q in t.queues
        ],
        "bindings": [
            {"source": ex, "vhost": vhost, "destination": qn, "destination_type": "queue",
             "routing_key": key, "arguments": {}}
            for ex, key, qn in t.bindings()
        ] + [
            {"source": src, "vhost": vhost, "destination": dest, "destination_type": "exchange",
             "routing_key": key, "arguments": {}}
            for src, key, dest in t.exchange_bindings
        ],
    }
    p = re.escape(t.names.prefix)
    for comp, password in (users or {}).items():
        if comp not in COMPONENT_PERMISSIONS:
            raise ValueError(f"unknown component {comp!r} (known: {', '.join(COMPONENT_PERMISSIONS)})")
        user = f"{user_prefix}{comp}"
        doc["users"].append({"name": user, "password_hash": rabbit_password_hash(password),
                             "hashing_algorithm": "rabbit_password_hashing_sha256",
                             "tags": ["administrator"] if comp == "operator" else []})
        conf, write, read = (r.replace("{p}", p) for r in COMPONENT_PERMISSIONS[comp])
        doc["permissions"].append({"user": user, "vhost": vhost, "configure": conf, "write": write, "read": read})
    return doc


def definitions_json(t: Topology, vhost: str = "/", users: dict[str, str] | None = None) -> str:
    return json.dumps(export_definitions(t, vhost, users), indent=2, sort_keys=False)
