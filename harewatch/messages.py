"""The public message contracts (DESIGN §2) as frozen dataclasses.

A :class:`Reading` is what producers publish to ``readings``; an
:class:`AnomalyEvent` is what detection workers publish to ``anomalies``.
Both carry explicit ``to_json``/``from_json``; events carry a schema version.
"""
from __future__ import annotations

import enum
import functools
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import orjson

from harewatch.errors import InvalidInput
from harewatch.times import iso, parse_ts

SCHEMA_VERSION = 1


class AnomalyType(str, enum.Enum):
    SPIKE = "spike"
    DIP = "dip"
    LEVEL_SHIFT = "level_shift"
    VARIANCE_CHANGE = "variance_change"
    FLATLINE = "flatline"
    MISSING_DATA = "missing_data"


class Channel(str, enum.Enum):
    """The notification channels a receiver can deliver through."""


    EMAIL = "email"
    SLACK = "slack"
    WEBHOOK = "webhook"
    PAGERDUTY = "pagerduty"
    MSTEAMS = "msteams"
    DINGTALK = "dingtalk"
    WECOM = "wecom"
    CONSOLE = "console"


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def series_name(metric: str, labels: Mapping[str, str]) -> str:
    """The human series id: ``metric{k="v",...}`` with labels sorted (Prometheus style)."""
    if not labels:
        return metric
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{metric}{{{inner}}}"


def fingerprint(metric: str, labels: Mapping[str, str]) -> str:
    """A stable short hash of the series identity (metric plus sorted label set)."""
    return hashlib.blake2b(series_name(metric, labels).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Reading:
    """One metric reading. ``ts`` is event time in epoch seconds (float)."""

    metric: str
    value: float
    ts: float
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def series(self) -> str:
        return series_name(self.metric, self.labels)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.metric, self.labels)

    def routing_key(self) -> str:
        """``<metric>.<source>``: the source is the host/instance label, else ``-``."""
        src = self.labels.get("host") or self.labels.get("instance") or self.labels.get("source") or "-"
        return f"{self.metric}.{src}"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "ts": iso(self.ts), "labels": dict(self.labels)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Reading":
        return parse_json_reading(json.loads(text))


@dataclass(frozen=True)
class AnomalyEvent:
    """An anomaly as published on the ``anomalies`` exchange (routing key ``<team>.<type>.<severity>``)."""

    series: str
    metric: str
    labels: Mapping[str, str]
    type: str
    severity: str
    ts: float
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    score: float
    team: str = "unowned"
    confidence: str = "high"
    model: Mapping[str, Any] = field(default_factory=dict)
    window: Mapping[str, Any] = field(default_factory=dict)
    status: str = "firing"     # "resolved": the alert is over now (a retired series' missing_data)
    id: str = ""
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in ("firing", "resolved"):
            raise InvalidInput(f"status is firing or resolved, got {self.status!r}", "bad_type", None, "status")
        if not self.id:
            # deterministic: the same anomaly found twice (redelivery) gets the same id
            key = f"{self.series}|{self.type}|{self.ts:.3f}" + ("|resolved" if self.status == "resolved" else "")
            object.__setattr__(self, "id", str(uuid.uuid5(uuid.NAMESPACE_URL, "harewatch:" + key)))

    def routing_key(self) -> str:
        return f"{routing_word(self.team)}.{self.type}.{self.severity}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form. Shallow (no ``asdict``): a chart window of 64 points would be deep-copied
        for every alert of every notification."""
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}
        d["ts"] = iso(self.ts)
        d["labels"] = dict(self.labels)
        d["model"] = dict(self.model)
        d["window"] = dict(self.window)
        for k in ("value", "expected", "lower", "upper", "score"):
            v = d[k]
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
            elif isinstance(v, float):
                d[k] = round(v, 6)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AnomalyEvent":
        """An event from its JSON form; InvalidInput names what is wrong."""
        if not isinstance(d, Mapping):
            raise InvalidInput(f"an anomaly event is a JSON object, got {type(d).__name__}", "bad_type")
        for k in ("metric", "type", "ts"):
            if k not in d:
                raise InvalidInput("missing", "missing_field", None, k)
        labels = d.get("labels") or {}
        if not isinstance(labels, Mapping):
            raise InvalidInput(f"labels are a JSON object, got {type(labels).__name__}", "bad_type", None, "labels")
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw["labels"] = {str(k): str(v) for k, v in labels.items()}
        if "series" not in kw:
            kw["series"] = fingerprint(str(d["metric"]), kw["labels"])
        kw.setdefault("severity", "warning")
        for k in ("value", "expected", "lower", "upper"):
            kw.setdefault(k, None)
        kw.setdefault("score", 0.0)
        kw["ts"] = parse_ts(d["ts"])
        kw["team"] = str(d.get("team") or "unowned")
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str | bytes) -> "AnomalyEvent":
        """An event from its JSON text (orjson: an event carries a chart window, and the router parses
        thousands a second); bad JSON raises ValueError, a bad event InvalidInput."""
        return cls.from_dict(orjson.loads(text))


@dataclass(frozen=True)
class Alert:
    """An alert as the router keeps it: the label set it is routed and grouped on, when it started and
    stops counting as firing (resolve timeout), and the latest anomaly event behind it."""

    labels: Mapping[str, str]
    fingerprint: str
    starts_at: float
    ends_at: float
    last_seen: float
    events: int = 1
    anomaly: AnomalyEvent | None = None
    schema: int = SCHEMA_VERSION

    def firing(self, now: float) -> bool:
        return self.ends_at > now

    def with_event(self, event: AnomalyEvent | None) -> "Alert":
        """The same alert with ``event`` as its latest anomaly."""
        return replace(self, anomaly=event)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "labels": dict(self.labels), "fingerprint": self.fingerprint,
                "startsAt": self.starts_at, "endsAt": self.ends_at, "lastSeen": self.last_seen,
                "events": self.events, "anomaly": self.anomaly.to_dict() if self.anomaly else None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Alert":
        return cls(labels=dict(d["labels"]), fingerprint=str(d["fingerprint"]), starts_at=float(d["startsAt"]),
                   ends_at=float(d["endsAt"]), last_seen=float(d.get("lastSeen", d["startsAt"])),
                   events=int(d.get("events", 1)), anomaly=_event_or_none(d.get("anomaly")),
                   schema=int(d.get("schema", SCHEMA_VERSION)))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Alert":
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class NotifiedAlert:
    """One alert as a notification reports it (Alertmanager's shape: RFC 3339 times, a zero end while firing)."""

    status: str
    labels: Mapping[str, str]
    fingerprint: str
    starts_at: str
    ends_at: str
    events: int = 1
    anomaly: AnomalyEvent | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "labels": dict(self.labels), "fingerprint": self.fingerprint,
                "startsAt": self.starts_at, "endsAt": self.ends_at, "events": self.events,
                "anomaly": self.anomaly.to_dict() if self.anomaly else {}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NotifiedAlert":
        return cls(status=str(d.get("status", "firing")), labels=dict(d.get("labels") or {}),
                   fingerprint=str(d.get("fingerprint", "")), starts_at=str(d.get("startsAt", "")),
                   ends_at=str(d.get("endsAt", "")), events=int(d.get("events", 1)),
                   anomaly=_event_or_none(d.get("anomaly")))


@dataclass(frozen=True)
class Notification:
    """What the router decided for one receiver integration: the group's alerts, firing and resolved.

    Travels as the ``harewatch.notify`` task's argument (:meth:`to_dict`); its
    ``id`` is the same on every retry and replay (email Message-ID, webhook
    Idempotency-Key)."""

    id: str
    receiver: str
    channel: str
    integration: int
    status: str
    group_key: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    alerts: tuple[NotifiedAlert, ...]
    firing: int
    resolved: int
    created: str
    truncated_alerts: int = 0
    version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "id": self.id, "receiver": self.receiver, "channel": self.channel,
                "integration": self.integration, "status": self.status, "group_key": self.group_key,
                "group_labels": dict(self.group_labels), "common_labels": dict(self.common_labels),
                "alerts": [a.to_dict() for a in self.alerts], "truncated_alerts": self.truncated_alerts,
                "firing": self.firing, "resolved": self.resolved, "created": self.created}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Notification":
        try:
            return cls(id=str(d["id"]), receiver=str(d.get("receiver", "")), channel=str(d.get("channel", "")),
                       integration=int(d.get("integration", 0)), status=str(d.get("status", "firing")),
                       group_key=str(d.get("group_key", "")), group_labels=dict(d.get("group_labels") or {}),
                       common_labels=dict(d.get("common_labels") or {}),
                       alerts=tuple(NotifiedAlert.from_dict(a) for a in d.get("alerts") or ()),
                       firing=int(d.get("firing", 0)), resolved=int(d.get("resolved", 0)),
                       created=str(d.get("created", "")), truncated_alerts=int(d.get("truncated_alerts", 0)),
                       version=int(d.get("version", SCHEMA_VERSION)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a harewatch notification: {exc!r}", "bad_notification") from None


def _event_or_none(d: Any) -> AnomalyEvent | None:
    """The anomaly behind an alert, if the stored dict is a whole event (older states kept a summary)."""
    if not d:
        return None
    try:
        return AnomalyEvent.from_dict(d)
    except (KeyError, TypeError, ValueError, InvalidInput):
        return None


def routing_word(s: str, empty: str = "unowned") -> str:
    """A routing-key word: dots would split it and ``#``/``*`` are wildcards, so they become underscores."""
    return (s or empty).replace(".", "_").replace("#", "_").replace("*", "_")


METRIC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_:\-]{0,199}$")
LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$")


def check_value(v: Any, line: int | None, field: str = "value") -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidInput(f"must be a number, got {type(v).__name__} {v!r:.40}", "bad_type", line, field)
    f = float(v)
    if not math.isfinite(f):
        raise InvalidInput(f"must be finite, got {v!r}", "not_finite", line, field)
    return f


def check_metric(m: Any, line: int | None) -> str:
    if not isinstance(m, str):
        raise InvalidInput(f"must be a string, got {type(m).__name__}", "bad_type", line, "metric")
    if not _metric_name_ok(m):
        raise InvalidInput(f"bad metric name {m!r:.60} (letters, digits, _ : - ; not starting with a digit)",
                           "bad_metric", line, "metric")
    return m


@functools.lru_cache(maxsize=4096)
def _metric_name_ok(name: str) -> bool:
    """A valid metric name (the same few names recur in every batch: each is matched once)."""
    return METRIC_RE.match(name) is not None


@functools.lru_cache(maxsize=4096)
def _label_name_ok(name: str) -> bool:
    """A valid label name (likewise)."""
    return LABEL_RE.match(name) is not None


def check_labels(raw: Any, line: int | None) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"must be an object, got {type(raw).__name__}", "bad_type", line, "labels")
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not _label_name_ok(k):
            raise InvalidInput(f"bad label name {k!r:.60}", "bad_label", line, f"labels.{k}")
        if isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
            raise InvalidInput(f"label value must be a string or number, got {v!r:.40}", "bad_type", line, f"labels.{k}")
        out[k] = str(v)
    return out


def parse_json_reading(obj: Any, line: int | None = None, default_ts: float | None = None) -> Reading:
    """A reading from one decoded JSON object of the DESIGN §2 shape."""
    if not isinstance(obj, dict):
        raise InvalidInput(f"a reading must be a JSON object, got {type(obj).__name__}", "bad_type", line)
    if "metric" not in obj:
        raise InvalidInput("missing", "missing_field", line, "metric")
    if "value" not in obj:
        raise InvalidInput("missing", "missing_field", line, "value")
    metric = check_metric(obj["metric"], line)
    value = check_value(obj["value"], line)
    raw_ts = obj.get("ts", obj.get("timestamp"))
    if raw_ts is None:
        if default_ts is None:
            raise InvalidInput("missing (and no message timestamp)", "missing_field", line, "ts")
        ts = default_ts
    else:
        ts = parse_ts(raw_ts, "ts", line)
    return Reading(metric, value, ts, check_labels(obj.get("labels"), line))
