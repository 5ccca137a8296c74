"""The harewatch config file: metric settings, channels, and (in routing) the route tree.

One YAML file (``routing/routes.yaml`` by default, ``HAREWATCH_CONFIG`` or
``--config`` to choose another).  Everything is validated on load; an error
names the file, the line and the field::

    routes.yaml:12: metrics.cpu_util.direction: must be one of up, down, both (got 'sideways')

Secrets are ``${ENV}`` references (``${VAR:-default}`` gives a default); a
missing variable without a default is a load error naming it.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from harewatch.durations import parse_duration
from harewatch.errors import ConfigError
from harewatch.messages import Channel
from harewatch.routing.ownership import OwnershipRule, rules_from_config
from harewatch.routing.yamlpos import LDict, LList, load_yaml
from harewatch.workers.detection.calibration import SENSITIVITY_PERIOD, score_for_period, sensitivity_threshold
from harewatch.workers.detection.detector import DetectorSettings

_D = DetectorSettings()   # the detector's own defaults are the config's defaults
DEFAULT_MAX_SERIES = 50_000
SENSITIVITY = {name: sensitivity_threshold(name) for name in SENSITIVITY_PERIOD}
_RATE_RE = re.compile(r"^\s*1\s*/\s*(\S+)\s*$")

KNOWN_CHANNELS = tuple(c.value for c in Channel)
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_:\-]*$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class MetricSettings:
    """How one metric is detected: seasonality, sensitivity and the decision knobs.

    ``periods`` is None to infer seasonality from history, () for none.
    ``threshold`` is the calibrated score (0.5: as rare as once a month on
    the series' normal data) from which a point is anomalous; ``confirm_k`` of the last ``confirm_n`` points must be
    anomalous before an alert fires.
    """

    name: str
    description: str = ""
    queue: str | None = None
    periods: tuple[float, ...] | None = _D.periods
    interval: float | None = _D.interval
    threshold: float = _D.threshold
    direction: str = _D.direction
    confirm_k: int = _D.confirm_k
    confirm_n: int = _D.confirm_n
    min_deviation: float = _D.min_deviation
    allowed_lateness: float = _D.allowed_lateness
    missing_after: float | None = _D.missing_after
    flatline_after: int = _D.flatline_after
    severity_critical: float = _D.severity_critical
    refit_every: float | None = _D.refit_every
    partitions: int = 1       # detect queues fed by a consistent-hash exchange on the routing key
    retire_after: float | None = _D.retire_after   # None: twice the longest period, at least 2 days
    max_series: int | None = DEFAULT_MAX_SERIES    # series one metric may create; None: no limit
    timezone: str | None = _D.timezone             # seasonal cycles follow this zone's clock; None: UTC

    @property
    def queue_suffix(self) -> str:
        """The detect queue's base name (before prefix): ``detect.<metric>`` unless set."""
        return self.queue or f"detect.{self.name}"


DEFAULT_METRIC = MetricSettings(name="default")


@dataclass(frozen=True)
class Selfwatch:
    """The pipeline watching itself: who gets its alerts, and how long without readings is too long."""

    team: str = "platform"
    no_readings_after: float = 600.0


@dataclass
class Config:
    """A loaded, validated config file."""

    path: str
    metrics: dict[str, MetricSettings]
    channels: tuple[str, ...]
    defaults: MetricSettings = DEFAULT_METRIC
    raw: Mapping[str, Any] = field(default_factory=dict)
    ownership: tuple[OwnershipRule, ...] = ()          # teams.<name>.owns, in order
    selfwatch: "Selfwatch" = field(default_factory=lambda: Selfwatch())
    routing: Any = None  # routing.tree.RoutingConfig, filled by routing.tree.load_routing

    def metric(self, name: str) -> MetricSettings:
        """Settings for ``name``: its own section, else the defaults."""
        got = self.metrics.get(name)
        if got is not None:
            return got
        return _replace(self.defaults, name=name, queue=None)

    def detect_queues(self) -> dict[str, list[str]]:
        """Detect queue base name -> the metrics it carries."""
        out: dict[str, list[str]] = {}
        for m in self.metrics.values():
            out.setdefault(m.queue_suffix, []).append(m.name)
        return out

    def partitions(self) -> dict[str, int]:
        """Detect queue base name -> its number of partitions, for the partitioned ones."""
        return {m.queue_suffix: m.partitions for m in self.metrics.values() if m.partitions > 1}


def _replace(m: MetricSettings, **kw: Any) -> MetricSettings:
    from dataclasses import replace
    return replace(m, **kw)


class Section:
    """A cursor over one mapping of the file that reports errors with file, line and field."""

    def __init__(self, data: Any, file: str, path: str, parent_line: int = 0) -> None:
        self.file = file
        self.path = path
        self.line = getattr(data, "line", parent_line)
        if data is None:
            data = LDict()
        if not isinstance(data, dict):
            raise ConfigError(f"must be a mapping, got {type(data).__name__}", file, self.line, path or None)
        self.data: LDict = data if isinstance(data, LDict) else LDict(data)

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def line_of(self, key: str) -> int:
        return self.data.line_of(key) if isinstance(self.data, LDict) else self.line

    def error(self, key: str | None, message: str) -> ConfigError:
        if key is None:
            return ConfigError(message, self.file, self.line, self.path or None)
        return ConfigError(message, self.file, self.line_of(key), self.field(key))

    def allow_only(self, keys: set[str]) -> None:
        for k in self.data:
            if k not in keys:
                raise self.error(k, f"unknown field (expected one of: {', '.join(sorted(keys))})")

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def sub(self, key: str) -> "Section":
        return Section(self.data.get(key), self.file, self.field(key), self.line_of(key))

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self.data.items())

    # typed getters ------------------------------------------------------
    def str_(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        if key not in self.data:
            if required:
                raise self.error(None, f"missing required field {key!r}")
            return default
        v = self.data[key]
        if not isinstance(v, str):
            raise self.error(key, f"must be a string, got {v!r}")
        return v

    def number(self, key: str, default: float | None, minimum: float | None = None,
               maximum: float | None = None) -> float | None:
        if key not in self.data or self.data[key] is None:
            return default
        v = self.data[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(key, f"must be a number, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.error(key, f"must be at least {minimum}, got {v}")
        if maximum is not None and v > maximum:
            raise self.error(key, f"must be at most {maximum}, got {v}")
        return float(v)

    def duration(self, key: str, default: float | None) -> float | None:
        if key not in self.data or self.data[key] is None:
            return default
        try:
            return parse_duration(self.data[key])
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        v = self.data.get(key, default)
        if v not in options:
            raise self.error(key, f"must be one of {', '.join(options)} (got {v!r})")
        return str(v)

    def list_(self, key: str) -> LList:
        v = self.data.get(key)
        if v is None:
            return LList()
        if not isinstance(v, list):
            raise self.error(key, f"must be a list, got {v!r}")
        return v if isinstance(v, LList) else LList(v)


def expand_env(value: Any, file: str, line: int, fieldname: str, env: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in strings, recursively."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set (referenced as ${{{name}}})",
                              file, line, fieldname)
        return _ENV_RE.sub(sub, value)
    if isinstance(value, LDict):
        out = LDict()
        out.line, out.key_lines = value.line, dict(getattr(value, "key_lines", {}))
        for k, v in value.items():
            out[k] = expand_env(v, file, value.line_of(k), f"{fieldname}.{k}" if fieldname else str(k), env)
        return out
    if isinstance(value, LList):
        out_l = LList()
        out_l.line, out_l.item_lines = value.line, list(getattr(value, "item_lines", []))
        for i, v in enumerate(value):
            out_l.append(expand_env(v, file, value.line_of(i), f"{fieldname}[{i}]", env))
        return out_l
    return value


_METRIC_KEYS = {"description", "queue", "periods", "interval", "sensitivity", "direction", "confirm",
                "min_deviation", "allowed_lateness", "missing_after", "flatline_after", "severity",
                "refit_every", "partitions", "retire_after", "max_series", "timezone"}


def _metric(sec: Section, name: str, base: MetricSettings) -> MetricSettings:
    sec.allow_only(_METRIC_KEYS)
    kw: dict[str, Any] = {"name": name}
    kw["description"] = sec.str_("description", base.description if name == "default" else "")
    q = sec.str_("queue")
    if q is not None and not q.startswith("detect."):
        raise sec.error("queue", f"must start with 'detect.' (got {q!r})")
    kw["queue"] = q
    if "periods" in sec.data:
        p = sec.data["periods"]
        if p in ("auto", None):
            kw["periods"] = None
        elif p in ("none", False) or p == []:
            kw["periods"] = ()
        else:
            items = p if isinstance(p, list) else [p]
            try:
                periods = tuple(sorted(parse_duration(x) for x in items))
            except ValueError as exc:
                raise sec.error("periods", f"{exc}; or 'auto' / 'none'") from None
            if any(x <= 0 for x in periods):
                raise sec.error("periods", "periods must be positive")
            kw["periods"] = periods
    else:
        kw["periods"] = base.periods
    kw["interval"] = sec.duration("interval", base.interval)
    if "sensitivity" in sec.data:
        s = sec.data["sensitivity"]
        rate = _RATE_RE.match(s) if isinstance(s, str) else None
        if isinstance(s, str) and s in SENSITIVITY:
            kw["threshold"] = SENSITIVITY[s]
        elif isinstance(s, (int, float)) and not isinstance(s, bool) and 0.0 < s < 1.0:
            kw["threshold"] = float(s)
        elif rate is not None:
            try:
                period = parse_duration(rate.group(1))
            except ValueError as exc:
                raise sec.error("sensitivity", f"false-alarm rate '1/<duration>': {exc}") from None
            if period < 3600:
                raise sec.error("sensitivity", "a false-alarm rate is at most one per hour")
            kw["threshold"] = score_for_period(period)
        else:
            raise sec.error("sensitivity", "must be low (one false alert per series-year), medium (per month), "
                            "high (per week), a false-alarm rate like '1/2w', or a score threshold between 0 and "
                            f"1 (got {s!r})")
    else:
        kw["threshold"] = base.threshold
    kw["direction"] = sec.choice("direction", ("up", "down", "both"), base.direction)
    if "confirm" in sec.data:
        c = sec.data["confirm"]
        m = re.match(r"^\s*(\d+)\s*(?:/|of)\s*(\d+)\s*$", str(c))
        if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 60:
            raise sec.error("confirm", f"must be 'k/n' with 1 <= k <= n <= 60, e.g. '2/3' (got {c!r})")
        kw["confirm_k"], kw["confirm_n"] = int(m.group(1)), int(m.group(2))
    else:
        kw["confirm_k"], kw["confirm_n"] = base.confirm_k, base.confirm_n
    kw["min_deviation"] = sec.number("min_deviation", base.min_deviation, minimum=0)
    kw["allowed_lateness"] = sec.duration("allowed_lateness", base.allowed_lateness)
    kw["missing_after"] = sec.duration("missing_after", base.missing_after)
    fa = sec.number("flatline_after", base.flatline_after, minimum=3)
    kw["flatline_after"] = int(fa) if fa is not None else base.flatline_after
    sev = sec.sub("severity")
    sev.allow_only({"critical"})
    kw["severity_critical"] = sev.number("critical", base.severity_critical, minimum=0)
    if not 0 < kw["severity_critical"] < 1:
        raise sev.error("critical", f"must be a score between 0 and 1 (got {kw['severity_critical']!r})")
    kw["refit_every"] = sec.duration("refit_every", base.refit_every)
    if "partitions" in sec.data:
        n = sec.data["partitions"]
        if name == "default" or isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
            raise sec.error("partitions", "a whole number of detect queues from 1 to 64, on a metric of its own"
                            if name != "default" else "is set per metric, not in defaults")
        if n > 1 and q is not None:
            raise sec.error("partitions", f"a partitioned metric has queues of its own (detect.{name}.<k>); "
                            f"remove queue: {q}")
        kw["partitions"] = n
    ra = sec.data.get("retire_after")
    if "retire_after" not in sec.data:
        kw["retire_after"] = base.retire_after
    elif ra == "auto":
        kw["retire_after"] = None
    elif ra == "never":
        kw["retire_after"] = math.inf
    else:
        kw["retire_after"] = sec.duration("retire_after", None)
        if kw["retire_after"] is None or kw["retire_after"] < 3600:
            raise sec.error("retire_after", f"a duration of at least 1h, 'auto' or 'never' (got {ra!r})")
    ms = sec.data.get("max_series")
    if "max_series" not in sec.data:
        kw["max_series"] = base.max_series
    elif ms == "unlimited":
        kw["max_series"] = None
    elif isinstance(ms, bool) or not isinstance(ms, int) or ms < 1:
        raise sec.error("max_series", f"a whole number of series (at least 1) or 'unlimited' (got {ms!r})")
    else:
        kw["max_series"] = ms
    kw["timezone"] = _timezone(sec, base.timezone)
    return MetricSettings(**kw)


def _timezone(sec: Section, default: str | None) -> str | None:
    """``timezone``: an IANA zone name (``Europe/Berlin``), or ``UTC``; the seasons of a metric counted in
    local time (business traffic) then keep their hour across daylight saving time changes."""
    if "timezone" not in sec.data:
        return default
    tz = sec.data["timezone"]
    if tz in ("UTC", "utc", "Etc/UTC"):
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    if isinstance(tz, str) and tz:
        try:
            ZoneInfo(tz)
            return tz
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise sec.error("timezone", f"unknown time zone {tz!r}: an IANA name such as Europe/Berlin or America/New_York, "
                    "or UTC")


TOP_KEYS = {"metrics", "defaults", "channels", "teams", "route", "receivers", "inhibit_rules",
            "time_intervals", "mute_time_intervals", "global", "templates", "ownership", "selfwatch"}


def parse_config(text: str, path: str, env: Mapping[str, str] | None = None) -> Config:
    """Validate config text; see :func:`load_config`."""
    env = os.environ if env is None else env
    data = load_yaml(text, path)
    if data is None:
        data = LDict()
    top = Section(data, path, "")
    top.allow_only(TOP_KEYS)
    data = expand_env(top.data, path, top.line, "", env)
    top = Section(data, path, "")

    defaults = _metric(top.sub("defaults"), "default", DEFAULT_METRIC)
    metrics: dict[str, MetricSettings] = {}
    msec = top.sub("metrics")
    for name, body in msec.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise msec.error(name, f"metric name {name!r} must match {_NAME_RE.pattern}")
        if name == "default":
            raise msec.error(name, "'default' is reserved (use the top-level 'defaults' section)")
        metrics[name] = _metric(Section(body, path, msec.field(name), msec.line_of(name)), name, defaults)
    for m in metrics.values():
        if m.partitions > 1 and any(o.queue_suffix == m.queue_suffix for o in metrics.values() if o is not m):
            raise msec.error(m.name, f"{m.queue_suffix} is partitioned ({m.partitions}); no other metric may "
                             f"set queue: {m.queue_suffix}")

    channels: list[str] = []
    clist = top.list_("channels")
    for i, ch in enumerate(clist):
        if ch not in KNOWN_CHANNELS:
            raise ConfigError(f"unknown channel {ch!r} (known: {', '.join(KNOWN_CHANNELS)})",
                              path, clist.line_of(i), f"channels[{i}]")
        if ch not in channels:
            channels.append(ch)
    sw = top.sub("selfwatch")
    sw.allow_only({"team", "no_readings_after"})
    selfwatch = Selfwatch(team=sw.str_("team", Selfwatch.team) or Selfwatch.team,
                          no_readings_after=sw.duration("no_readings_after", Selfwatch.no_readings_after)
                          or Selfwatch.no_readings_after)
    return Config(path=path, metrics=metrics, channels=tuple(channels), defaults=defaults, raw=data,
                  ownership=tuple(rules_from_config(data)), selfwatch=selfwatch)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the config file at ``path``.

    Raises :class:`ConfigError` naming file, line and field on any problem,
    including a missing file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found (set HAREWATCH_CONFIG or --config)", str(p)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", str(p)) from None
    return parse_config(text, str(p), env)
