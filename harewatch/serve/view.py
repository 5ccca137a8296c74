"""What ``harewatch serve`` shows, read from the stores the workers write: the router's alerts (with the
receivers they go to and whether a silence or an inhibition suppresses them), their groups, the series
the detectors keep, and the dead-letter queues. The same reads back the pages, the Alertmanager API and
``harewatch series``."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from harewatch.messages import Alert, fingerprint, series_name
from harewatch.routing.dispatch import Router, alert_fingerprint
from harewatch.routing.matchers import Matcher, matches_all
from harewatch.routing.silences import Silence
from harewatch.settings import Settings
from harewatch.workers.detection import Detector, DetectorSettings
from harewatch.workers.detection.detector import SeriesState
from harewatch.workers.store import StateStore


@dataclass(frozen=True)
class AlertView:
    """A firing alert as Alertmanager's API reports it: where it goes and what suppresses it."""

    alert: Alert
    receivers: tuple[str, ...]
    silenced_by: tuple[str, ...]
    inhibited_by: tuple[str, ...]

    @property
    def state(self) -> str:
        return "suppressed" if self.silenced_by or self.inhibited_by else "active"


@dataclass(frozen=True)
class GroupView:
    """An alert group of one route (Alertmanager's ``alertGroup``)."""

    labels: dict[str, str]
    receiver: str
    alerts: tuple[AlertView, ...]


def receiver_filter(pattern: str | None) -> re.Pattern[str] | None:
    """Alertmanager's ``receiver`` parameter: a regex anchored at both ends."""
    if not pattern:
        return None
    try:
        return re.compile(f"^(?:{pattern})$")
    except re.error as exc:
        raise ValueError(f"bad receiver regex {pattern!r}: {exc}") from None


class View:
    """Reads for the pages, the API and the CLI, from one settings' Redis and one config."""

    def __init__(self, config: Any, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.settings = settings
        self.clock = clock
        self.router = Router(config.routing, settings.redis_url, settings.prefix, clock)
        self.series = StateStore(settings.redis_url, settings.prefix)

    # -- alerts -------------------------------------------------------------------------
    def alerts(self, filters: Sequence[Matcher] = (), receiver: re.Pattern[str] | None = None, active: bool = True,
               silenced: bool = True, inhibited: bool = True) -> list[AlertView]:
        """The firing alerts (newest first) matching every filter, with their receivers and status."""
        now = self.clock()
        store = self.router.store
        firing = store.events(store.firing(now))
        rc = self.config.routing
        sils = [(s.id, s.parsed()) for s in self.router.silences() if s.active(now)]
        inhibitor = rc.inhibitor([a.labels for a in firing])
        out = []
        for a in firing:
            if filters and not matches_all(filters, a.labels):
                continue
            receivers = tuple(dict.fromkeys(r.receiver for r in rc.match(a.labels)))
            if receiver is not None and not any(receiver.match(r) for r in receivers):
                continue
            by = inhibitor.inhibited_by(a.labels)
            v = AlertView(a, receivers, tuple(sid for sid, ms in sils if matches_all(ms, a.labels)),
                          (alert_fingerprint(by),) if by is not None else ())
            if (v.state == "active" and not active) or (v.silenced_by and not silenced) or \
                    (v.inhibited_by and not inhibited):
                continue
            out.append(v)
        out.sort(key=lambda v: -v.alert.starts_at)
        return out

    def groups(self, views: Iterable[AlertView]) -> list[GroupView]:
        """The alerts by the group they join on each route they match (as Alertmanager's API groups them)."""
        found: dict[tuple[str, str], tuple[dict[str, str], str, list[AlertView]]] = {}
        for v in views:
            for route in self.config.routing.match(v.alert.labels):
                key = (route.path, route.group_key(v.alert.labels))
                if key not in found:
                    found[key] = (route.group_labels(v.alert.labels), route.receiver, [])
                found[key][2].append(v)
        return [GroupView(labels, receiver, tuple(vs)) for labels, receiver, vs in found.values()]

    def would_silence(self, matchers: Sequence[Matcher]) -> list[AlertView]:
        """The firing alerts a silence with these matchers would mute (its preview)."""
        return [v for v in self.alerts() if matches_all(matchers, v.alert.labels)]

    def silences(self) -> list[Silence]:
        return self.router.silences()

    # -- series -------------------------------------------------------------------------
    def detector(self, metric: str) -> Detector:
        return Detector(DetectorSettings.from_metric(self.config.metric(metric)))

    def list_series(self, metric: str | None = None, matchers: Sequence[Matcher] = (), limit: int = 50
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Series (newest first, at most ``limit`` per metric) of ``metric`` or of every metric, matching
        ``matchers`` (``__name__`` is the metric): last seen, points, periods, confidence, state bytes and
        open alerts; and per metric its count against ``max_series``, retired series and rejected readings."""
        from harewatch.times import iso
        store = self.series
        metrics = [metric] if metric else store.metrics()
        alerts = self.open_alerts()
        limits, retired = store.limits(), store.retired_total()
        rows: list[dict[str, Any]] = []
        summary: list[dict[str, Any]] = []
        for name in metrics:
            det = self.detector(name)
            fps = store.series_of(name)
            seen = dict(zip(fps, store.last_seen(fps)))
            fps.sort(key=lambda f: -(seen.get(f) or 0.0))
            shown = 0
            for start in range(0, len(fps), 500):
                if shown >= limit:
                    break
                chunk = fps[start:start + 500]
                states = store.get_states(chunk)
                for fp, meta in zip(chunk, store.metas(chunk)):
                    labels = meta["labels"] if meta else {}
                    if matchers and not matches_all(matchers, {**labels, "__name__": name}):
                        continue
                    blob = states.get(fp)
                    st = SeriesState.from_bytes(blob) if blob else None
                    last = seen.get(fp)
                    rows.append({"series": fp, "metric": name, "labels": labels, "name": series_name(name, labels),
                                 "last_seen": iso(last) if last else None, "points": st.n if st else 0,
                                 "periods": det.model_info(st)["periods"] if st else [],
                                 "confidence": det.confidence(st) if st else None,
                                 "state_bytes": len(blob) if blob else 0, "open_alerts": alerts.get(fp, [])})
                    shown += 1
                    if shown >= limit:
                        break
            lim = limits.get(name, {})
            summary.append({"metric": name, "series": len(fps), "max_series": self.config.metric(name).max_series,
                            "retired": retired.get(name, 0), "rejected_readings": int(lim.get("rejected", 0))})
        return rows, summary

    def find_series(self, metric: str, labels: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
        """The series of ``metric`` with exactly these labels, else every one whose labels include them."""
        fp = fingerprint(metric, labels)
        known = self.series.series_of(metric)
        if fp in known:
            return [(fp, labels)]
        return [(f, m["labels"]) for f, m in zip(known, self.series.metas(known))
                if m is not None and all(m["labels"].get(k) == v for k, v in labels.items())]

    def series_detail(self, fp: str) -> dict[str, Any] | None:
        """One series: its model and recent points with band (``Detector.describe``), its bucketed history
        with what the model expects there, recent anomalies and open alerts; None if unknown."""
        meta = self.series.meta(fp)
        blob = self.series.get_states([fp]).get(fp)
        if meta is None or blob is None:
            return None
        metric, labels = meta["metric"], meta["labels"]
        det = self.detector(metric)
        st = SeriesState.from_bytes(blob)
        d = det.describe(st)
        d.update({"series": fp, "metric": metric, "labels": labels, "name": series_name(metric, labels),
                  "history": det.history_chart(st), "anomalies": self.series.anomalies(fp),
                  "open_alerts": self.open_alerts().get(fp, [])})
        return d

    def open_alerts(self) -> dict[str, list[str]]:
        """Series fingerprint -> its firing alerts as ``type/severity``."""
        store = self.router.store
        out: dict[str, list[str]] = {}
        for a in store.events(store.firing(self.clock())):
            if a.anomaly is not None:
                out.setdefault(a.anomaly.series, []).append(f"{a.anomaly.type}/{a.anomaly.severity}")
        return out
