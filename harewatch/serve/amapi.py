"""Alertmanager's v2 API shapes (``api/v2/openapi.yaml``) for harewatch's alerts, groups, receivers and
silences: pure functions from harewatch values to the JSON amtool, Karma and Grafana read, and from the
silences they post back to harewatch's."""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import yaml

from harewatch.durations import format_duration
from harewatch.errors import InvalidInput
from harewatch.messages import series_name
from harewatch.routing.matchers import Matcher, parse_matcher, parse_matchers
from harewatch.routing.silences import Silence
from harewatch.serve.view import AlertView, GroupView
from harewatch.times import iso, parse_ts

# receiver settings that are secrets (or carry one, like a webhook URL): never shown
SECRET_KEYS = re.compile(r"(url|key|token|secret|password|credentials|webhook)", re.IGNORECASE)


def alert_annotations(a: AlertView) -> dict[str, str]:
    """What the anomaly says of the alert, as Alertmanager annotations (strings)."""
    ev = a.alert.anomaly
    if ev is None:
        return {}
    what = f"{ev.type} on {series_name(ev.metric, ev.labels)}"
    if ev.value is not None and ev.expected is not None:
        what += f": {ev.value:g}, expected {ev.expected:g}"
    out = {"summary": what, "score": f"{ev.score:g}", "confidence": ev.confidence, "series": ev.series}
    for k in ("value", "expected", "lower", "upper"):
        v = getattr(ev, k)
        if v is not None:
            out[k] = f"{v:g}"
    if ev.value is not None and ev.expected is not None:
        out["description"] = f"value {ev.value:g}, expected {ev.expected:g}"
    if ev.model.get("method"):
        out["method"] = str(ev.model["method"])
    return out


def gettable_alert(a: AlertView, series_url: str = "") -> dict[str, Any]:
    al = a.alert
    out: dict[str, Any] = {
        "labels": dict(al.labels), "annotations": alert_annotations(a), "fingerprint": al.fingerprint,
        "startsAt": iso(al.starts_at), "endsAt": iso(al.ends_at), "updatedAt": iso(al.last_seen),
        "receivers": [{"name": r} for r in a.receivers],
        "status": {"state": a.state, "silencedBy": list(a.silenced_by), "inhibitedBy": list(a.inhibited_by)},
    }
    if series_url and al.anomaly is not None:
        out["generatorURL"] = series_url + al.anomaly.series
    return out


def alert_group(g: GroupView, series_url: str = "") -> dict[str, Any]:
    return {"labels": g.labels, "receiver": {"name": g.receiver},
            "alerts": [gettable_alert(a, series_url) for a in g.alerts]}


def matcher_json(m: Matcher) -> dict[str, Any]:
    return {"name": m.name, "value": m.value, "isRegex": m.op in ("=~", "!~"), "isEqual": m.op in ("=", "=~")}


def silence_state(s: Silence, now: float) -> str:
    if s.ends_at <= now:
        return "expired"
    return "pending" if s.starts_at > now else "active"


def gettable_silence(s: Silence, now: float) -> dict[str, Any]:
    return {"id": s.id, "status": {"state": silence_state(s, now)}, "updatedAt": iso(s.updated_at or s.starts_at),
            "matchers": [matcher_json(m) for m in s.parsed()], "startsAt": iso(s.starts_at), "endsAt": iso(s.ends_at),
            "createdBy": s.created_by, "comment": s.comment}


def silence_matches_filter(s: Silence, filters: Sequence[Matcher]) -> bool:
    """Alertmanager's silence filter: every filter matcher is one of the silence's matchers."""
    mine = {(m.name, m.op, m.value) for m in s.parsed()}
    return all((f.name, f.op, f.value) in mine for f in filters)


def filters(values: Sequence[str]) -> list[Matcher]:
    """The ``filter`` query parameters (each one matcher or a ``{...}`` list); ValueError names the bad one."""
    out: list[Matcher] = []
    for v in values:
        try:
            out += parse_matchers(v) if v.strip().startswith("{") else [parse_matcher(v.strip())]
        except ValueError as exc:
            raise ValueError(f"bad matcher {v!r}: {exc}") from None
    return out


def postable_silence(doc: Any, now: float) -> tuple[str | None, list[str], float, float, str, str]:
    """A posted silence as (id to replace, matcher texts, start, end, created by, comment); InvalidInput says
    what is wrong, as Alertmanager's validation would."""
    if not isinstance(doc, Mapping):
        raise InvalidInput("a silence is a JSON object", "bad_type")
    ms = doc.get("matchers")
    if not isinstance(ms, list) or not ms:
        raise InvalidInput("at least one matcher is required", "missing_field", None, "matchers")
    texts = []
    for i, m in enumerate(ms):
        if not isinstance(m, Mapping) or not isinstance(m.get("name"), str) or not isinstance(m.get("value"), str):
            raise InvalidInput("a matcher has a name and a value (strings)", "bad_type", None, f"matchers[{i}]")
        regex, equal = bool(m.get("isRegex", False)), bool(m.get("isEqual", True))
        op = ("=~" if equal else "!~") if regex else ("=" if equal else "!=")
        try:
            texts.append(str(Matcher.make(m["name"], op, m["value"])))
        except (ValueError, Exception) as exc:  # noqa: BLE001 - RE2 raises its own error type
            raise InvalidInput(f"invalid matcher: {exc}", "bad_value", None, f"matchers[{i}]") from None
    if all(parse_matcher(t).matches({}) for t in texts):
        raise InvalidInput("at least one matcher must not match the empty string", "bad_value", None, "matchers")
    for k in ("startsAt", "endsAt"):
        if k not in doc:
            raise InvalidInput("missing", "missing_field", None, k)
    start, end = parse_ts(doc["startsAt"], "startsAt"), parse_ts(doc["endsAt"], "endsAt")
    if end <= start:
        raise InvalidInput("end time must not be before start time", "bad_value", None, "endsAt")
    if end <= now:
        raise InvalidInput("end time can't be in the past", "bad_value", None, "endsAt")
    sid = doc.get("id") or None
    return (str(sid) if sid else None, texts, max(start, now), end, str(doc.get("createdBy") or ""),
            str(doc.get("comment") or ""))


def redacted(raw: Any) -> Any:
    """The config with every receiver secret (URLs, keys, tokens, passwords) replaced by ``<secret>``, as
    plain dicts and lists (positioned YAML values become plain ones, ready to dump)."""
    if isinstance(raw, Mapping):
        return {k: ("<secret>" if SECRET_KEYS.search(str(k)) and not isinstance(v, (Mapping, list)) and v
                    else redacted(v)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [redacted(v) for v in raw]
    return raw


def status(config: Any, version: str, started: float, peers: Sequence[str] = ()) -> dict[str, Any]:
    """``GET /api/v2/status``: the config (secrets redacted), version and uptime; harewatch is no cluster."""
    routing_keys = ("global", "route", "receivers", "inhibit_rules", "time_intervals", "mute_time_intervals",
                    "templates")
    shown = {k: v for k, v in redacted(config.raw).items() if k in routing_keys}
    shown.setdefault("global", {"resolve_timeout": format_duration(config.routing.resolve_timeout)})
    return {"cluster": {"status": "disabled", "peers": [{"name": p, "address": p} for p in peers]},
            "versionInfo": {"version": version, "revision": "", "branch": "", "buildUser": "", "buildDate": "",
                            "goVersion": "none (harewatch, Python)"},
            "config": {"original": yaml.safe_dump(shown, sort_keys=False)}, "uptime": iso(started)}

