"""The routing tree: Alertmanager's ``route``, ``receivers``, ``inhibit_rules`` and time intervals,
plus harewatch's team-first shorthand expanded into the same tree.

Semantics follow Prometheus Alertmanager: a route matches when all its
matchers match; children are tried in order, the first match stops the
search unless it has ``continue: true``; a route none of whose children
match delivers to its own receiver; ``receiver``, ``group_by`` and the
timings are inherited, mute/active time intervals are not.

>>> rc = parse_routing({"route": {"receiver": "ops", "routes": [
...     {"matchers": ['team="payments"'], "receiver": "pay"}]},
...     "receivers": [{"name": "ops"}, {"name": "pay"}]}, "cfg.yaml")
>>> [r.receiver for r in rc.match({"team": "payments"})]
['pay']
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

from harewatch.durations import format_duration, parse_duration
from harewatch.errors import ConfigError
from harewatch.messages import AnomalyEvent
from harewatch.routing.matchers import LABEL_NAME_RE, Matcher, matches_all, parse_matchers
from harewatch.routing.inhibit import Inhibitor
from harewatch.routing.timeintervals import TimeRange, active, parse_time_range
from harewatch.routing.yamlpos import LDict, LList

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
DEFAULT_RESOLVE_TIMEOUT = 300.0

# Alertmanager integration keys -> harewatch channel; send_resolved default as Alertmanager has it
INTEGRATIONS: dict[str, tuple[str, bool]] = {
    "email_configs": ("email", False),
    "slack_configs": ("slack", False),
    "webhook_configs": ("webhook", True),
    "pagerduty_configs": ("pagerduty", True),
    "msteams_configs": ("msteams", True),
    "msteamsv2_configs": ("msteams", True),
    "dingtalk_configs": ("dingtalk", True),
    "wecom_configs": ("wecom", True),
    "console_configs": ("console", True),
}
UNSUPPORTED = {"opsgenie_configs", "victorops_configs", "pushover_configs", "sns_configs", "telegram_configs",
               "discord_configs", "webex_configs", "wechat_configs", "jira_configs", "rocketchat_configs",
               "incidentio_configs", "mattermost_configs"}
REQUIRED = {"email": ("to",), "webhook": ("url",), "pagerduty": (("routing_key", "service_key"),),
            "dingtalk": ("url",), "wecom": ("url",), "msteams": ("webhook_url",)}
_ROUTE_KEYS = {"receiver", "group_by", "continue", "match", "match_re", "matchers", "group_wait",
               "group_interval", "repeat_interval", "mute_time_intervals", "active_time_intervals", "routes"}


@dataclass
class Integration:
    channel: str
    index: int
    settings: dict[str, Any]
    send_resolved: bool

    @property
    def key(self) -> str:
        return f"{self.channel}/{self.index}"


@dataclass
class Receiver:
    name: str
    integrations: list[Integration] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)


@dataclass
class Route:
    receiver: str
    matchers: list[Matcher] = field(default_factory=list)
    continue_: bool = False
    group_by: tuple[str, ...] = ()
    group_by_all: bool = False
    group_wait: float = DEFAULT_GROUP_WAIT
    group_interval: float = DEFAULT_GROUP_INTERVAL
    repeat_interval: float = DEFAULT_REPEAT_INTERVAL
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    routes: list["Route"] = field(default_factory=list)
    path: str = "0"
    line: int = 0

    def match(self, labels: Mapping[str, str]) -> list["Route"]:
        """The routes (in order, duplicates kept) an alert with ``labels`` is delivered through."""
        if not matches_all(self.matchers, labels):
            return []
        out: list[Route] = []
        for child in self.routes:
            got = child.match(labels)
            if got:
                out.extend(got)
                if not child.continue_:
                    break
        return out or [self]

    def group_key(self, labels: Mapping[str, str]) -> str:
        """Which group of this route an alert belongs to (Alertmanager's group labels)."""
        if self.group_by_all:
            items = sorted(labels.items())
        else:
            items = [(k, labels.get(k, "")) for k in self.group_by]
        return "{" + ",".join(f'{k}="{v}"' for k, v in items) + "}"

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels of the group an alert with ``labels`` joins on this route (its group_by labels)."""
        if self.group_by_all:
            return dict(labels)
        return {k: labels.get(k, "") for k in self.group_by if k in labels}

    def walk(self, depth: int = 0) -> Iterator[tuple["Route", int]]:
        """This route and every route below it, depth first, with their depth."""
        yield self, depth
        for c in self.routes:
            yield from c.walk(depth + 1)

    def timings(self) -> dict[str, Any]:
        return {"receiver": self.receiver, "group_by": "..." if self.group_by_all else list(self.group_by),
                "group_wait": format_duration(self.group_wait), "group_interval": format_duration(self.group_interval),
                "repeat_interval": format_duration(self.repeat_interval)}


@dataclass
class InhibitRule:
    source: list[Matcher]
    target: list[Matcher]
    equal: tuple[str, ...]
    line: int = 0

    def inhibits(self, target: Mapping[str, str], firing: Sequence[Mapping[str, str]]) -> Mapping[str, str] | None:
        """The firing alert that inhibits ``target`` under this rule alone, if any (Alertmanager's semantics,
        see :mod:`routing.inhibit`)."""
        return Inhibitor([self], firing).inhibited_by(target)


@dataclass
class RoutingConfig:
    root: Route
    receivers: dict[str, Receiver]
    inhibit_rules: list[InhibitRule]
    time_intervals: dict[str, list[TimeRange]]
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT
    global_: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        return self.root.match(labels)

    def channels(self) -> set[str]:
        return {i.channel for r in self.receivers.values() for i in r.integrations}

    def inhibitor(self, firing: Iterable[Mapping[str, str]]) -> Inhibitor:
        """The inhibit rules indexed over these firing alerts' label sets."""
        return Inhibitor(self.inhibit_rules, firing)

    def inhibited_by(self, labels: Mapping[str, str], firing: Sequence[Mapping[str, str]]) -> Mapping[str, str] | None:
        """The firing alert that inhibits an alert with ``labels``, if any (one-off: index, then look up)."""
        return self.inhibitor(firing).inhibited_by(labels)

    def muted(self, route: Route, ts: float) -> bool:
        """True when a mute interval of the route is active, or it has active intervals and none is."""
        if any(active(self.time_intervals.get(n, []), ts) for n in route.mute_time_intervals):
            return True
        if route.active_time_intervals:
            return not any(active(self.time_intervals.get(n, []), ts) for n in route.active_time_intervals)
        return False


# -- parsing -------------------------------------------------------------------
class _P:
    def __init__(self, file: str) -> None:
        self.file = file

    def err(self, obj: Any, key: Any, field_: str, msg: str) -> ConfigError:
        line = obj.line_of(key) if isinstance(obj, (LDict, LList)) else getattr(obj, "line", None)
        return ConfigError(msg, self.file, line, field_)

    def duration(self, d: Mapping[str, Any], key: str, path: str, default: float) -> float:
        if key not in d or d[key] is None:
            return default
        try:
            return parse_duration(d[key], strict=True)
        except ValueError as exc:
            raise self.err(d, key, f"{path}.{key}", str(exc)) from None

    def matchers(self, d: Mapping[str, Any], path: str, prefix: str = "") -> list[Matcher]:
        out: list[Matcher] = []
        mk = f"{prefix}matchers"
        for i, text in enumerate(d.get(mk) or []):
            try:
                out.extend(parse_matchers(str(text)))
            except ValueError as exc:
                lst = d[mk]
                line = lst.line_of(i) if isinstance(lst, LList) else None
                raise ConfigError(str(exc), self.file, line, f"{path}.{mk}[{i}]") from None
        for key, op in ((f"{prefix}match", "="), (f"{prefix}match_re", "=~")):
            m = d.get(key) or {}
            if not isinstance(m, dict):
                raise self.err(d, key, f"{path}.{key}", "must be a mapping of label: value")
            for name, val in m.items():
                if not LABEL_NAME_RE.match(str(name)):
                    raise self.err(m, name, f"{path}.{key}.{name}", f'invalid label name "{name}"')
                if val is None and op == "=~":
                    raise self.err(m, name, f"{path}.{key}.{name}", f'invalid regexp value for "{name}"')
                try:
                    out.append(Matcher.make(str(name), op, "" if val is None else str(val)))
                except ValueError as exc:
                    raise self.err(m, name, f"{path}.{key}.{name}", str(exc)) from None
        return out


def _parse_route(p: _P, d: Any, path: str, parent: Route | None, names: set[str]) -> Route:
    if not isinstance(d, dict):
        raise ConfigError("must be a mapping", p.file, getattr(d, "line", None), path)
    for k in d:
        if k not in _ROUTE_KEYS:
            raise p.err(d, k, f"{path}.{k}", f"unknown field (expected one of: {', '.join(sorted(_ROUTE_KEYS))})")
    receiver = d.get("receiver") or (parent.receiver if parent else None)
    if not receiver:
        raise ConfigError("root route must specify a default receiver", p.file, getattr(d, "line", None),
                          f"{path}.receiver")
    if parent is None:
        # Alertmanager's rules for the root route, with its wording
        if d.get("matchers") or d.get("match") or d.get("match_re"):
            key = next(k for k in ("matchers", "match", "match_re") if d.get(k))
            raise p.err(d, key, f"{path}.{key}", "root route must not have any matchers")
        if d.get("continue"):
            raise p.err(d, "continue", f"{path}.continue", "cannot have continue in root route")
        for key in ("mute_time_intervals", "active_time_intervals"):
            if d.get(key):
                raise p.err(d, key, f"{path}.{key}",
                            f"root route must not have any {key.replace('_time_intervals', '')} time intervals")
    if receiver not in names:
        raise p.err(d, "receiver", f"{path}.receiver", f'undefined receiver "{receiver}" used in route '
                    f"(defined: {', '.join(sorted(names)) or 'none'})")
    gb_raw = d.get("group_by")
    if gb_raw is None:
        group_by, group_all = (parent.group_by, parent.group_by_all) if parent else ((), False)
    else:
        if not isinstance(gb_raw, list):
            raise p.err(d, "group_by", f"{path}.group_by", "must be a list of label names, or ['...']")
        group_all = "..." in gb_raw
        seen: set[str] = set()
        for g in gb_raw:
            if g == "...":
                continue
            if not LABEL_NAME_RE.match(str(g)):
                raise p.err(d, "group_by", f"{path}.group_by", f'invalid label name "{g}" in group_by list')
            if str(g) in seen:
                raise p.err(d, "group_by", f"{path}.group_by", f'duplicated label "{g}" in group_by')
            seen.add(str(g))
        if group_all and len(gb_raw) > 1:
            raise p.err(d, "group_by", f"{path}.group_by",
                        "cannot have wildcard group_by (`...`) and other labels at the same time")
        group_by = () if group_all else tuple(str(g) for g in gb_raw)
    cont = d.get("continue", False)
    if not isinstance(cont, bool):
        raise p.err(d, "continue", f"{path}.continue", "must be true or false")
    route = Route(
        receiver=receiver,
        matchers=p.matchers(d, path),
        continue_=cont,
        group_by=group_by,
        group_by_all=group_all,
        group_wait=p.duration(d, "group_wait", path, parent.group_wait if parent else DEFAULT_GROUP_WAIT),
        group_interval=p.duration(d, "group_interval", path,
                                  parent.group_interval if parent else DEFAULT_GROUP_INTERVAL),
        repeat_interval=p.duration(d, "repeat_interval", path,
                                   parent.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL),
        mute_time_intervals=tuple(d.get("mute_time_intervals") or ()),
        active_time_intervals=tuple(d.get("active_time_intervals") or ()),
        path=path,
        line=getattr(d, "line", 0),
    )
    if route.group_interval <= 0:
        raise p.err(d, "group_interval", f"{path}.group_interval", "group_interval cannot be zero")
    if route.repeat_interval <= 0:
        raise p.err(d, "repeat_interval", f"{path}.repeat_interval", "repeat_interval cannot be zero")
    children = d.get("routes") or []
    if not isinstance(children, list):
        raise p.err(d, "routes", f"{path}.routes", "must be a list of routes")
    route.routes = [_parse_route(p, c, f"{path}.routes[{i}]", route, names) for i, c in enumerate(children)]
    return route


def _parse_receivers(p: _P, lst: Any, warnings: list[str]) -> dict[str, Receiver]:
    out: dict[str, Receiver] = {}
    if not isinstance(lst, list):
        raise ConfigError("must be a list", p.file, getattr(lst, "line", None), "receivers")
    for i, r in enumerate(lst):
        path = f"receivers[{i}]"
        if not isinstance(r, dict) or not r.get("name"):
            raise ConfigError("missing name in receiver", p.file, lst.line_of(i) if isinstance(lst, LList) else None,
                              f"{path}.name")
        name = str(r["name"])
        if name in out:
            raise p.err(r, "name", f"{path}.name", f'notification config name "{name}" is not unique')
        rec = Receiver(name)
        for key, val in r.items():
            if key == "name":
                continue
            if key in UNSUPPORTED:
                rec.unsupported.append(key)
                warnings.append(f"{p.file}:{r.line_of(key) if isinstance(r, LDict) else '?'}: receiver {name!r}: "
                                f"{key} is not delivered by harewatch (kept for Alertmanager compatibility)")
                continue
            if key not in INTEGRATIONS:
                raise p.err(r, key, f"{path}.{key}", f"unknown integration (known: {', '.join(sorted(INTEGRATIONS))})")
            channel, resolved_default = INTEGRATIONS[key]
            if not isinstance(val, list):
                raise p.err(r, key, f"{path}.{key}", "must be a list")
            for j, conf in enumerate(val):
                cpath = f"{path}.{key}[{j}]"
                if not isinstance(conf, dict):
                    raise p.err(r, key, cpath, "must be a mapping")
                for req in REQUIRED.get(channel, ()):
                    alts = req if isinstance(req, tuple) else (req,)
                    if not any(conf.get(a) or conf.get(f"{a}_file") for a in alts):
                        raise p.err(r, key, cpath, f"missing {' or '.join(alts)}")
                sr = conf.get("send_resolved", resolved_default)
                rec.integrations.append(Integration(channel, len(rec.integrations), dict(conf), bool(sr)))
        out[name] = rec
    return out


def _parse_inhibit(p: _P, lst: Any) -> list[InhibitRule]:
    out = []
    for i, r in enumerate(lst or []):
        path = f"inhibit_rules[{i}]"
        if not isinstance(r, dict):
            raise ConfigError("must be a mapping", p.file, getattr(lst, "line", None), path)
        src = p.matchers(r, path, "source_")
        tgt = p.matchers(r, path, "target_")
        equal = r.get("equal") or ()
        for name in equal:
            if not LABEL_NAME_RE.match(str(name)):
                raise p.err(r, "equal", f"{path}.equal", f'invalid label name "{name}" in equal list')
        out.append(InhibitRule(src, tgt, tuple(str(x) for x in equal), getattr(r, "line", 0)))
    return out


def _parse_intervals(p: _P, raw: Mapping[str, Any]) -> dict[str, list[TimeRange]]:
    out: dict[str, list[TimeRange]] = {}
    for key in ("time_intervals", "mute_time_intervals"):
        lst = raw.get(key) or []
        for i, ti in enumerate(lst):
            path = f"{key}[{i}]"
            if isinstance(ti, dict) and str(ti.get("name")) in out:
                kind = "time interval" if key == "time_intervals" else "mute time interval"
                raise ConfigError(f'{kind} "{ti.get("name")}" is not unique', p.file, getattr(ti, "line", None),
                                  f"{path}.name")
            try:
                out[str(ti["name"])] = [parse_time_range(dict(t)) for t in ti.get("time_intervals") or []]
            except (KeyError, ValueError, TypeError) as exc:
                raise ConfigError(f"bad time interval: {exc}", p.file, getattr(ti, "line", None), path) from None
    return out


def expand_teams(raw: Mapping[str, Any], file: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``teams:`` shorthand as (receivers, routes) in Alertmanager form."""
    receivers: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    teams = raw.get("teams") or {}
    if not isinstance(teams, dict):
        raise ConfigError("must be a mapping of team name to settings", file, getattr(teams, "line", None), "teams")
    for team, body in teams.items():
        body = body or LDict()
        tpath = f"teams.{team}"
        allowed = {"owns", "notify", "group_by", "group_wait", "group_interval", "repeat_interval"}
        for k in body:
            if k not in allowed:
                raise ConfigError(f"unknown field (expected one of: {', '.join(sorted(allowed))})", file,
                                  body.line_of(k) if isinstance(body, LDict) else None, f"{tpath}.{k}")
        children = []
        counts: dict[str, int] = {}
        for i, n in enumerate(body.get("notify") or []):
            npath = f"{tpath}.notify[{i}]"
            line = n.line if isinstance(n, LDict) else None
            ch = str(n.get("channel")) if isinstance(n, dict) else ""
            key = next((k for k, (c, _) in INTEGRATIONS.items() if c == ch and k != "msteamsv2_configs"), None)
            if key is None:
                raise ConfigError(f"unknown channel {ch!r}", file, line, f"{npath}.channel")
            counts[ch] = counts.get(ch, 0) + 1
            rname = f"{team}-{ch}" + (f"-{counts[ch]}" if counts[ch] > 1 else "")
            conf = {k: v for k, v in n.items() if k not in ("channel", "when")}
            if ch == "slack":
                if "webhook_url" in conf:
                    conf["api_url"] = conf.pop("webhook_url")
                if "channel_name" in conf:
                    conf["channel"] = conf.pop("channel_name")
            rec = LDict({"name": rname, key: [conf]})
            rec.line = line or 0
            receivers.append(rec)
            matchers = []
            for lk, lv in (n.get("when") or {}).items():
                if isinstance(lv, list):
                    matchers.append(f'{lk}=~"{"|".join(re.escape(str(x)) for x in lv)}"')
                else:
                    matchers.append(f'{lk}="{lv}"')
            child = LDict({"receiver": rname, "continue": True, "matchers": matchers})
            child.line = line or 0
            children.append(child)
        receivers.append(LDict({"name": str(team)}))
        r = LDict({"receiver": str(team), "matchers": [f'team="{team}"'], "routes": children})
        r.line = getattr(body, "line", 0)
        for k in ("group_by", "group_wait", "group_interval", "repeat_interval"):
            if k in body:
                r[k] = body[k]
        routes.append(r)
    return receivers, routes


def parse_routing(raw: Mapping[str, Any], file: str) -> RoutingConfig:
    """Validate the routing sections of a (harewatch or Alertmanager) config."""
    p = _P(file)
    warnings: list[str] = []
    team_receivers, team_routes = expand_teams(raw, file)
    rec_list = list(raw.get("receivers") or []) + team_receivers
    if not any(r.get("name") == "default" for r in rec_list if isinstance(r, dict)) and "route" not in raw:
        rec_list.append(LDict({"name": "default"}))
    receivers = _parse_receivers(p, rec_list, warnings)
    route_raw = raw.get("route")
    if route_raw is None:
        if raw.get("receivers") and not raw.get("teams"):
            # an Alertmanager config with receivers and no route: refused, as Alertmanager refuses it
            raise ConfigError("no routes provided", file, getattr(raw.get("receivers"), "line", None), "route")
        route_raw = LDict({"receiver": "default", "group_by": ["alertname", "team"]})
    if team_routes:
        route_raw = LDict(route_raw)
        route_raw.line = getattr(raw.get("route"), "line", 0)
        route_raw["routes"] = team_routes + list(route_raw.get("routes") or [])
    root = _parse_route(p, route_raw, "route", None, set(receivers))
    intervals = _parse_intervals(p, raw)
    for r, _ in root.walk():
        for n in r.mute_time_intervals + r.active_time_intervals:
            if n not in intervals:
                raise ConfigError(f'undefined time interval "{n}" used in route', file, r.line, f"{r.path}")
    g = dict(raw.get("global") or {})
    resolve = DEFAULT_RESOLVE_TIMEOUT
    if "resolve_timeout" in g:
        try:
            resolve = parse_duration(g["resolve_timeout"], strict=True)
        except ValueError as exc:
            raise ConfigError(str(exc), file, raw["global"].line_of("resolve_timeout")
                              if isinstance(raw["global"], LDict) else None, "global.resolve_timeout") from None
    return RoutingConfig(root, receivers, _parse_inhibit(p, raw.get("inhibit_rules")), intervals, resolve, g, warnings)


def alert_labels(event: AnomalyEvent) -> dict[str, str]:
    """The label set an anomaly event is routed on: its labels plus alertname, metric, type, severity, team."""
    labels = {str(k): str(v) for k, v in event.labels.items()}
    team = event.team if event.team and event.team != "unowned" else labels.get("team") or "unowned"
    labels.update({"alertname": event.metric, "metric": event.metric, "type": str(event.type),
                   "severity": str(event.severity), "team": team})
    return labels
