"""Detection in a Celery worker (``--detect METRICS``): the ``detect.<metric>`` queues consumed in batches.

Readings are plain AMQP messages from any client, not Celery task messages. They are consumed by a
:class:`~harewatch.broker.consume.BatchConsumer` (pika, in a thread of the worker: Celery's own
consumer costs about 80 us a message, the broker's pace is 25-40 us), scored a batch at a time, the
anomalies and invalid readings published with pipelined confirms, the series states written to Redis,
and only then is everything acknowledged (``basic.ack`` multiple). A crash at any point leaves the
messages unacknowledged, so the broker redelivers them; duplicates are recognised by the detector.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Sequence

import redis
from celery import bootsteps

from harewatch.broker.consume import BatchConsumer, Delivery, run_in_thread
from harewatch.broker.declare import declare_queues
from harewatch.broker.publish import ConfirmedPublisher
from harewatch.errors import InvalidInput
from harewatch.workers import metrics, runtime
from harewatch.workers.detection import IMPLEMENTATION
from harewatch.workers.engine import BatchResult, Engine, Incoming, Invalid
from harewatch.workers.events import event_messages, invalid_messages, task_message
from harewatch.workers.partitions import PartitionClaims

log = logging.getLogger("harewatch.detect")

MAX_WAIT = 0.05           # seconds a message may wait to be scored
MAX_BATCH = 1000          # messages scored together, at most
MAX_BYTES = 32 * 1024     # ... and at most this much body (100 readings a message: about 400 readings)
CHECKPOINT = 1.0          # seconds between state writes + acks (anomalies go out before, at once)
QUIET = 0.1               # ... or sooner, once no batch has come for this long: the queue has gone quiet
CLAIM_EVERY = 2.0         # seconds between looks at the partition leases
PREFETCH = 30000          # unacked messages the broker lets this consumer hold (a checkpoint before 90%)


def select_queues(cfg: Any, prefix: str, which: str) -> list[Any]:
    """The kombu Queue values of the detect queues named by ``which`` (comma list of metrics, 'all'),
    every partition of a partitioned metric included."""
    from harewatch.broker.topology import topology_from_config

    topo = topology_from_config(cfg, prefix)
    wanted = {w.strip() for w in which.split(",") if w.strip()}
    names = topo.names
    by_exchange: dict[str, set[str]] = {}
    for _src, key, dest in topo.exchange_bindings:
        by_exchange.setdefault(dest, set()).add(key.removesuffix(".#"))

    def metrics_of(q: Any) -> set[str]:
        return {m for b in q.bindings
                for m in (by_exchange.get(b.exchange.name) or {b.routing_key.removesuffix(".#")})}

    out = []
    for q in topo.queues:
        if not q.name.startswith(names.p("detect.")):
            continue
        if "all" in wanted:
            out.append(q)
        elif q.name == names.detect_default and "default" in wanted:
            out.append(q)
        elif metrics_of(q) & wanted or q.name.removeprefix(names.p("detect.")) in wanted:
            out.append(q)
    unknown = wanted - {"all", "default"} - {m for q in out for m in metrics_of(q)}
    unknown -= {q.name.removeprefix(names.p("detect.")) for q in out}
    if unknown:
        raise ValueError(f"no detect queue for metric(s) {sorted(unknown)}; configured: "
                         f"{sorted(cfg.metrics)} (others go to detect.default)")
    return out


def partition_groups(cfg: Any, prefix: str, queues: list[str]) -> dict[str, list[str]]:
    """Of these queues, the partitions, by the hash exchange (``detect.<metric>``) that feeds them."""
    from harewatch.broker.topology import topology_from_config

    chosen = set(queues)
    return {ex: [q for q in qs if q in chosen]
            for ex, qs in topology_from_config(cfg, prefix).partitions.items() if chosen & set(qs)}


class Detection:
    """Batches of reading deliveries scored by the engine (a :class:`~harewatch.broker.consume.Handler`).

    A batch is parsed and scored at once; its anomaly events and invalid readings are published together
    with pipelined confirms; every ``CHECKPOINT`` seconds (or when the unacknowledged deliveries approach
    the prefetch, or as soon as the queue goes quiet for :data:`QUIET`) the changed states are written to
    Redis, refits are asked for, and everything scored is acknowledged with one ``basic.ack`` (multiple):
    a burst is saved and acknowledged when it ends, not up to a second later. Any failure acknowledges
    nothing: the consumer reconnects, the broker redelivers, and the engine starts again from the saved
    states (a reading scored twice is recognised as a duplicate).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.engine = Engine(runtime.config(), runtime.store())
        self.out = ConfirmedPublisher(runtime.settings())
        self.last_tag: int | None = None      # the last delivery scored and not yet acknowledged
        self.unacked = 0
        self.refits: list[tuple[str, str, int]] = []
        self.pending: list[tuple[Any, float]] = []   # batch results not yet acked (for the counters)
        self.last_checkpoint = time.monotonic()
        self.last_batch = 0.0      # when the last batch was scored
        self.isolating = False     # after an engine failure: score one message at a time until a checkpoint

    def on_batch(self, consumer: BatchConsumer, batch: list[Delivery]) -> None:
        t0 = time.monotonic()
        res = self._score(batch)
        self.out.publish(invalid_messages(res.invalid) + event_messages(res.events))
        self.refits.extend(res.refits)
        self.pending.append((res, time.monotonic() - t0))
        self.last_tag = batch[-1].tag
        self.unacked += len(batch)
        self.last_batch = time.monotonic()
        if self.last_batch - self.last_checkpoint >= CHECKPOINT or self.unacked >= PREFETCH * 0.9:
            self.checkpoint(consumer)

    def on_tick(self, consumer: BatchConsumer) -> None:
        now = time.monotonic()
        if self.last_tag is not None and (now - self.last_checkpoint >= CHECKPOINT
                                          or now - self.last_batch >= QUIET):
            self.checkpoint(consumer)

    def on_stop(self, consumer: BatchConsumer) -> None:
        if self.last_tag is not None:
            self.checkpoint(consumer)

    def on_reset(self) -> None:
        self.engine.reset()          # another consumer may have moved the states on meanwhile
        self.last_tag, self.unacked, self.refits, self.pending = None, 0, [], []
        self.out.close()

    def checkpoint(self, consumer: BatchConsumer) -> None:
        """Save every changed state, ask for refits, then acknowledge everything scored at once."""
        self.engine.persist()
        names = runtime.names()
        self.out.publish([task_message(self.app, "harewatch.refit", str(uuid.uuid4()), "", names.tasks,
                                       args=[fp, metric, upto]) for fp, metric, upto in self.refits])
        self.refits = []
        if self.last_tag is not None:
            consumer.ack_through(self.last_tag)
        self.last_tag, self.unacked = None, 0
        for res, seconds in self.pending:   # counted once acked, so a redelivered batch is not counted twice
            metrics.record_batch(res, seconds)
        self.pending = []
        self.last_checkpoint = time.monotonic()
        self.isolating = False

    def _score(self, msgs: Sequence[Incoming]) -> BatchResult:
        if self.isolating:
            return self.one_by_one(msgs)
        try:
            return self.engine.process(msgs)
        except (redis.RedisError, OSError, ConnectionError):
            raise
        except Exception as exc:  # noqa: BLE001 - find the message that breaks the engine
            # states may be half-updated: start again from the saved ones, each unsaved message alone
            self.isolating = True
            raise EngineFailed(f"scoring failed ({exc!r}); the unacknowledged messages are scored again one "
                               f"by one") from exc

    def one_by_one(self, msgs: Sequence[Incoming]) -> BatchResult:
        """Score each message alone; one that breaks the engine is an invalid reading (reason ``internal``)."""
        res = BatchResult()
        for m in msgs:
            try:
                one = self.engine.process([m])
            except (redis.RedisError, OSError, ConnectionError):
                raise
            except Exception as exc:  # noqa: BLE001
                res.invalid.append(Invalid(m, InvalidInput(f"internal error while scoring: {exc!r}", "internal")))
                continue
            res.events += one.events
            res.invalid += one.invalid
            res.refits += one.refits
            res.readings += one.readings
            res.scored += one.scored
            res.late += one.late
        return res


class DetectService(bootsteps.StartStopStep):
    """``--detect METRICS``: consume those metrics' detect queues in a thread of this worker; of a
    partitioned metric, the partitions this worker holds (see :mod:`workers.partitions`), looked at
    every :data:`CLAIM_EVERY` seconds."""

    name = "harewatch.detect"

    def __init__(self, parent: Any, detect: str | None = None, **kwargs: Any) -> None:
        self.which = detect
        self.enabled = bool(detect)
        self.app = parent.app
        self.consumer: BatchConsumer | None = None
        self.thread: threading.Thread | None = None
        self.control: threading.Thread | None = None
        self.stopping = threading.Event()
        self.claims: PartitionClaims | None = None
        super().__init__(parent, **kwargs)

    def start(self, parent: Any) -> None:
        if IMPLEMENTATION != "compiled":
            log.warning("detection: the detector runs as plain Python, about half as fast as its compiled "
                        "build (install harewatch where a C compiler is present)")
        settings, cfg = runtime.settings(), runtime.config()
        queues = select_queues(cfg, settings.prefix, self.which or "all")
        groups = partition_groups(cfg, settings.prefix, [q.name for q in queues])
        partitioned = {q for qs in groups.values() for q in qs}
        self.fixed = [q for q in queues if q.name not in partitioned]
        self.by_name = {q.name: q for q in queues}
        if groups:
            worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
            self.claims = PartitionClaims(runtime.store().r, settings.prefix, worker, groups)
        self.stopping.clear()
        if self.claims is not None:
            self.claims.announce()         # partitions are taken on the first rebalance, CLAIM_EVERY from now
        self._consume(self.fixed)
        if self.claims is not None:
            self.control = threading.Thread(target=self._rebalance, name="harewatch-partitions", daemon=True)
            self.control.start()

    def _held(self) -> list[Any]:
        if self.claims is None:
            return []
        try:
            return [self.by_name[q] for q in sorted(self.claims.refresh())]
        except Exception as exc:  # noqa: BLE001 - Redis away: keep the partitions consumed, try again
            log.warning("partition leases not renewed: %s", exc)
            fixed = {q.name for q in self.fixed}
            return [self.by_name[q] for q in (self.consumer.queues if self.consumer else []) if q not in fixed]

    def _consume(self, queues: list[Any]) -> None:
        from harewatch.broker.connection import pika_parameters

        settings = runtime.settings()
        self.consumer = BatchConsumer(lambda: pika_parameters(settings), [q.name for q in queues],
                                      Detection(self.app), prefetch=PREFETCH, max_batch=MAX_BATCH,
                                      max_wait=MAX_WAIT, tick=0.1, name="detection", max_bytes=MAX_BYTES,
                                      on_connect=lambda: declare_queues(settings, queues))
        self.thread = run_in_thread(self.consumer) if queues else None
        if not queues and self.claims is not None:
            log.info("detection: holding no partition yet; standing by")

    def _rebalance(self) -> None:
        """Follow the leases: when the partitions held change, checkpoint and consume the new set."""
        while not self.stopping.wait(CLAIM_EVERY):
            wanted = self.fixed + self._held()
            if self.consumer is not None and [q.name for q in wanted] == self.consumer.queues:
                continue
            self._stop_consumer()
            if not self.stopping.is_set():
                self._consume(wanted)

    def _stop_consumer(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()        # scores what it holds, checkpoints, acks, closes
        if self.thread is not None:
            self.thread.join(60)
        self.thread = None

    def stop(self, parent: Any) -> None:
        self.stopping.set()
        if self.control is not None:
            self.control.join(30)
        self._stop_consumer()
        if self.claims is not None:
            try:
                self.claims.release()      # a standby takes over at once
            except Exception:  # noqa: BLE001 - the leases lapse on their own
                pass


class EngineFailed(Exception):
    """The engine failed on a batch for a reason other than Redis or the network (a bug, or a message
    that triggers one): nothing is acknowledged, and the redelivered messages are scored one by one."""
