"""The detection consumer: a Celery consumer bootstep on the ``detect.<metric>`` queues.

Readings are plain AMQP messages from any client, not Celery task messages,
so they are consumed by a bootstep (the documented way to consume other
messages inside a Celery worker).  Messages are buffered for a few
milliseconds, scored as a batch, anomalies and invalid messages are published
with publisher confirms, series states are written to Redis, and only then
is the batch acknowledged (``basic.ack`` multiple).  A crash at any point
leaves the batch unacknowledged, so the broker redelivers it; duplicates are
recognised by the detector.
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Any

import redis
from kombu import Consumer

from harewatch.workers import metrics, runtime
from harewatch.workers.engine import Engine, InMessage, Invalid
from harewatch.workers.events import EventPublisher
from harewatch.workers.steps import TimedConsumerStep

log = logging.getLogger("harewatch.detect")

FLUSH_INTERVAL = 0.05     # seconds a message may wait to be scored
MAX_BATCH = 400           # messages scored together
CHECKPOINT = 0.5          # seconds between state writes + acks (anomalies go out before, at once)
PREFETCH = 1200           # unacked messages the broker lets this consumer hold


def select_queues(cfg: Any, prefix: str, which: str) -> list[Any]:
    """The kombu Queue values of the detect queues named by ``which`` (comma list of metrics, 'all')."""
    from harewatch.broker.topology import topology_from_config

    topo = topology_from_config(cfg, prefix)
    wanted = {w.strip() for w in which.split(",") if w.strip()}
    names = topo.names
    out = []
    for q in topo.queues:
        if not q.name.startswith(names.p("detect.")):
            continue
        if "all" in wanted:
            out.append(q)
            continue
        metrics = {b.routing_key.removesuffix(".#") for b in q.bindings}
        if q.name == names.detect_default and "default" in wanted:
            out.append(q)
        elif metrics & wanted or q.name.removeprefix(names.p("detect.")) in wanted:
            out.append(q)
    unknown = wanted - {"all", "default"} - {m for q in out for m in
                                             (b.routing_key.removesuffix(".#") for b in q.bindings)}
    unknown -= {q.name.removeprefix(names.p("detect.")) for q in out}
    if unknown:
        raise ValueError(f"no detect queue for metric(s) {sorted(unknown)}; configured: "
                         f"{sorted(cfg.metrics)} (others go to detect.default)")
    return out


class DetectConsumer(TimedConsumerStep):
    """``--detect METRICS``: consume those detect queues in this worker."""

    name = "harewatch.detect"
    interval = FLUSH_INTERVAL

    def __init__(self, parent: Any, detect: str | None = None, **kwargs: Any) -> None:
        self.app = parent.app
        self.which = detect
        self.enabled = bool(detect)
        self.buffer: list[Any] = []
        self.unacked: list[Any] = []          # scored, anomalies published, state not yet saved
        self.refits: list[tuple[str, str, int]] = []
        self.pending: list[tuple[Any, float]] = []   # batch results not yet acked (for the counters)
        self.last_checkpoint = time.monotonic()
        self.first_at = 0.0
        self.engine: Engine | None = None
        self.out: EventPublisher | None = None
        self.retry_at = 0.0
        self.failures = 0
        self.stats = {"readings": 0, "invalid": 0, "anomalies": 0, "batches": 0}
        super().__init__(parent, **kwargs)

    def get_consumers(self, channel: Any) -> list[Consumer]:
        cfg = runtime.config()
        queues = select_queues(cfg, runtime.settings().prefix, self.which or "all")
        if self.engine is None:
            self.engine = Engine(cfg, runtime.store())
        self.engine.reset()         # we may have lost single-active-consumer status meanwhile
        self.buffer, self.unacked, self.refits, self.pending = [], [], [], []
        if self.out is None:
            self.out = EventPublisher(self.app)
        log.info("detection consuming %s", ", ".join(q.name for q in queues))
        # one consumer per queue, so a rejected reading can name the queue it came from
        return [Consumer(channel, queues=[q], on_message=functools.partial(self.on_message, queue=q.name),
                         prefetch_count=PREFETCH, no_ack=False, auto_declare=True) for q in queues]

    def on_tick(self) -> None:
        self.flush()

    def before_stop(self) -> None:
        try:
            self.flush()
            if self.unacked:
                self.checkpoint()
        except Exception:  # noqa: BLE001 - unacked messages will be redelivered
            log.exception("final flush failed")

    def on_message(self, message: Any, queue: str = "") -> None:
        if not self.buffer:
            self.first_at = time.monotonic()
        message.harewatch_queue = queue
        self.buffer.append(message)
        if len(self.buffer) >= MAX_BATCH:
            self.flush()

    def flush(self) -> None:
        """Score what is buffered; every CHECKPOINT, save states and ack (the timer calls this).

        Any failure (Redis or the broker away, an exchange deleted, a bug) acks
        nothing: every message not yet acknowledged is scored again from the
        saved state after a back-off, so a reading is acked only once it was
        scored and everything it caused was confirmed.
        """
        if time.monotonic() < self.retry_at:
            return
        try:
            if self.buffer:
                batch, self.buffer = self.buffer, []
                self.unacked.extend(batch)
                self._score(batch)
            if self.unacked and (time.monotonic() - self.last_checkpoint >= CHECKPOINT
                                 or len(self.unacked) >= PREFETCH * 0.6):
                self.checkpoint()
            self.retry_at, self.failures = 0.0, 0
        except Exception as exc:  # noqa: BLE001 - whatever failed, defer rather than lose
            self.failures += 1
            delay = min(30.0, 0.5 * 2 ** min(self.failures, 6))
            log.warning("%d messages deferred for %.1fs: %s", len(self.unacked) + len(self.buffer), delay,
                        exc or type(exc).__name__)
            self.buffer = self.unacked + self.buffer
            self.unacked, self.refits, self.pending = [], [], []
            self.retry_at = time.monotonic() + delay
            if self.engine:
                self.engine.reset()

    def checkpoint(self) -> None:
        """Save every changed state, ask for refits, then ack all scored messages at once."""
        assert self.engine is not None
        self.engine.persist()
        for fp, metric, upto in self.refits:
            self.app.send_task("harewatch.refit", args=[fp, metric, upto])
        self.refits = []
        last = self.unacked[-1]
        last.channel.basic_ack(last.delivery_tag, multiple=True)
        for m in self.unacked:
            m._state = "ACK"
        self.unacked = []
        for res, seconds in self.pending:   # counted once acked, so a retried batch is not counted twice
            self.stats["readings"] += res.scored + res.late
            self.stats["invalid"] += len(res.invalid)
            self.stats["anomalies"] += len(res.events)
            self.stats["batches"] += 1
            metrics.record_batch(res, seconds)
        self.pending = []
        self.last_checkpoint = time.monotonic()

    def _score(self, batch: list[Any]) -> None:
        assert self.engine is not None and self.out is not None
        t0 = time.monotonic()
        msgs = [self._in(m) for m in batch]
        try:
            res = self.engine.process(msgs)
        except (redis.RedisError, OSError, ConnectionError):
            raise
        except Exception:  # noqa: BLE001 - isolate the message that breaks the engine
            log.exception("batch failed; scoring the unsaved messages again one by one")
            # states may be half-updated: start again from what is saved, with every unsaved message
            self.engine.reset()
            res = self._one_by_one([self._in(m) for m in self.unacked])
            self.pending = []   # the result covers every unacked message, earlier batches included
        self.out.invalid(res.invalid)
        self.out.events(res.events)
        self.refits.extend(res.refits)
        self.pending.append((res, time.monotonic() - t0))

    def _one_by_one(self, msgs: list[InMessage]) -> Any:
        from harewatch.errors import InvalidInput
        from harewatch.workers.engine import BatchResult

        assert self.engine is not None
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
        return res

    @staticmethod
    def _in(m: Any) -> InMessage:
        """The engine's view of a kombu message; never raises, whatever the client sent."""
        props = m.properties or {}
        ts: Any = props.get("timestamp")
        if hasattr(ts, "timestamp"):
            ts = ts.timestamp()
        try:
            ts = float(ts) if ts else None
        except (TypeError, ValueError):
            ts = None
        di = m.delivery_info or {}
        return InMessage(body=as_bytes(m.body), content_type=m.content_type, timestamp=ts,
                         routing_key=di.get("routing_key", ""), exchange=di.get("exchange", ""),
                         headers=m.headers or {}, tag=m.delivery_tag, queue=getattr(m, "harewatch_queue", ""))


def as_bytes(body: Any) -> bytes:
    """A message body as bytes: py-amqp hands an empty body over as ``''`` and kombu may decode text."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogateescape")
    return b"" if body is None else str(body).encode("utf-8", "replace")

