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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

SCHEMA_VERSION = 1


class AnomalyType(str, enum.Enum):
    SPIKE = "spike"
    DIP = "dip"
    LEVEL_SHIFT = "level_shift"
    VARIANCE_CHANGE = "variance_change"
    FLATLINE = "flatline"
    MISSING_DATA = "missing_data"


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def iso(ts: float) -> str:
    """RFC 3339 UTC with a Z, millisecond precision when needed."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


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
        from producers.formats import parse_json_reading
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
        return f"{_word(self.team)}.{self.type}.{self.severity}"

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
        from producers.formats import parse_ts
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw["ts"] = parse_ts(d["ts"])
        kw["labels"] = dict(d.get("labels") or {})
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str | bytes) -> "AnomalyEvent":
        return cls.from_dict(json.loads(text))


def _word(s: str) -> str:
    """A routing-key word: dots would split it, so they become underscores."""
    return (s or "unowned").replace(".", "_").replace("#", "_").replace("*", "_")
