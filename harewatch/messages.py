"""The public message contracts (DESIGN §2) as frozen dataclasses.

A :class:`Reading` is what producers publish to ``readings``; an
:class:`AnomalyEvent` is what detection workers publish to ``anomalies``.
Both carry explicit ``to_json``/``from_json``; events carry a schema version.
"""
from __future__ import annotations

import enum
import hashlib
import json
import math
import uuid
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

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
    id: str = ""
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.id:
            # deterministic: the same anomaly found twice (redelivery) gets the same id
            key = f"{self.series}|{self.type}|{self.ts:.3f}"
            object.__setattr__(self, "id", str(uuid.uuid5(uuid.NAMESPACE_URL, "harewatch:" + key)))

    def routing_key(self) -> str:
        return f"{routing_word(self.team)}.{self.type}.{self.severity}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = iso(self.ts)
        d["labels"] = dict(self.labels)
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
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw["ts"] = parse_ts(d["ts"])
        kw["labels"] = dict(d.get("labels") or {})
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str | bytes) -> "AnomalyEvent":
        return cls.from_dict(json.loads(text))


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
    if not METRIC_RE.match(m):
        raise InvalidInput(f"bad metric name {m!r:.60} (letters, digits, _ : - ; not starting with a digit)",
                           "bad_metric", line, "metric")
    return m


def check_labels(raw: Any, line: int | None) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"must be an object, got {type(raw).__name__}", "bad_type", line, "labels")
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not LABEL_RE.match(k):
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
