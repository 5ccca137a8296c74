"""One typed settings table, read from the environment (and CLI flags).

Every setting has a name, a type, a default, the environment variable it is
read from and a line of help; :func:`load_settings` validates them eagerly so
a bad value fails at start naming the variable.

>>> s = load_settings({"HAREWATCH_PREFIX": "prod."})
>>> s.prefix
'prod.'
"""
from __future__ import annotations

import os
import importlib.util
import ssl
import urllib.parse
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from harewatch.errors import ConfigError

def _default_config() -> Path:
    """The shipped example config: routes.yaml of the harewatch.routing package (found, not imported)."""
    spec = importlib.util.find_spec("harewatch.routing")
    base = Path(spec.origin).parent if spec and spec.origin else Path(__file__).resolve().parent.parent / "routing"
    return base / "routes.yaml"


DEFAULT_CONFIG = _default_config()


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean (true/false), got {text!r}")


@dataclass(frozen=True)
class Option:
    """One row of the settings table."""

    name: str
    type: Callable[[str], Any]
    default: Any
    env: str
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("amqp_url", str, "amqp://guest:guest@127.0.0.1:5672/%2F", "AMQP_URL",
           "RabbitMQ URL, amqp:// or amqps:// (vhost as the path, %2F for '/')."),
    Option("amqp_ca_file", str, "", "HAREWATCH_AMQP_CA_FILE", "CA bundle for amqps://."),
    Option("amqp_cert_file", str, "", "HAREWATCH_AMQP_CERT_FILE", "Client certificate for amqps://."),
    Option("amqp_key_file", str, "", "HAREWATCH_AMQP_KEY_FILE", "Client key for amqps://."),
    Option("amqp_verify", _bool, True, "HAREWATCH_AMQP_VERIFY", "Verify the broker's TLS certificate."),
    Option("management_url", str, "http://guest:guest@127.0.0.1:15672", "HAREWATCH_MANAGEMENT_URL",
           "RabbitMQ management API (drift details, DLQ counts, queue depth metrics)."),
    Option("redis_url", str, "redis://127.0.0.1:6379/0", "REDIS_URL", "Redis URL for series and alert state."),
    Option("config", str, str(DEFAULT_CONFIG), "HAREWATCH_CONFIG", "Routing and metrics config file (YAML)."),
    Option("prefix", str, "", "HAREWATCH_PREFIX", "Prefix for every exchange and queue name, e.g. 'prod.'."),
    Option("sentry_dsn", str, "", "SENTRY_DSN", "Sentry DSN; errors are reported when set."),
    Option("log_level", str, "INFO", "HAREWATCH_LOG_LEVEL", "Log level (DEBUG, INFO, WARNING, ERROR)."),
    Option("log_format", str, "text", "HAREWATCH_LOG_FORMAT", "Log format: text or json."),
    Option("metrics_port", int, 0, "HAREWATCH_METRICS_PORT",
           "Port for the Prometheus /metrics and /healthz endpoint (0: off)."),
    Option("templates_dir", str, "", "HAREWATCH_TEMPLATES_DIR", "Directory of user templates overriding the built-in ones."),
    Option("serve_token", str, "", "HAREWATCH_SERVE_TOKEN",
           "Bearer token that harewatch serve asks of writes (silences, replay, purge)."),
    Option("serve_basic_auth", str, "", "HAREWATCH_SERVE_BASIC_AUTH",
           "user:password that harewatch serve asks of its pages and writes (basic auth)."),
)

_PREFIX_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:")


@dataclass(frozen=True)
class Settings:
    """The validated settings of one process. Build with :func:`load_settings`."""

    amqp_url: str = OPTIONS[0].default
    amqp_ca_file: str = ""
    amqp_cert_file: str = ""
    amqp_key_file: str = ""
    amqp_verify: bool = True
    management_url: str = "http://guest:guest@127.0.0.1:15672"
    redis_url: str = "redis://127.0.0.1:6379/0"
    config: str = str(DEFAULT_CONFIG)
    prefix: str = ""
    sentry_dsn: str = ""
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_port: int = 0
    templates_dir: str = ""
    serve_token: str = ""
    serve_basic_auth: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- derived views -------------------------------------------------
    @property
    def vhost(self) -> str:
        """The vhost named by :attr:`amqp_url` ('/' when the path is empty)."""
        path = urllib.parse.urlsplit(self.amqp_url).path
        if not path or path == "/":
            return "/"
        return urllib.parse.unquote(path[1:])

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context for amqps:// URLs, None for plain amqp://."""
        if not self.amqp_url.startswith("amqps://"):
            return None
        ctx = ssl.create_default_context(cafile=self.amqp_ca_file or None)
        if self.amqp_cert_file:
            ctx.load_cert_chain(self.amqp_cert_file, self.amqp_key_file or None)
        if not self.amqp_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def with_overrides(self, **values: Any) -> "Settings":
        """A copy with some settings replaced (CLI flags win over the environment)."""
        clean = {k: v for k, v in values.items() if v is not None}
        new = replace(self, **clean)
        _validate(new, source="flag")
        return new


def _validate(s: Settings, source: str = "environment") -> None:
    def bad(opt_name: str, msg: str) -> ConfigError:
        env = next(o.env for o in OPTIONS if o.name == opt_name)
        return ConfigError(msg, file=source, field=env)

    scheme = urllib.parse.urlsplit(s.amqp_url).scheme
    if scheme not in ("amqp", "amqps"):
        raise bad("amqp_url", f"must start with amqp:// or amqps://, got {s.amqp_url!r}")
    if urllib.parse.urlsplit(s.redis_url).scheme not in ("redis", "rediss", "unix"):
        raise bad("redis_url", f"must start with redis://, rediss:// or unix://, got {s.redis_url!r}")
    if urllib.parse.urlsplit(s.management_url).scheme not in ("http", "https"):
        raise bad("management_url", f"must be an http(s) URL, got {s.management_url!r}")
    if any(c not in _PREFIX_OK for c in s.prefix):
        raise bad("prefix", f"may hold letters, digits and . _ - : only, got {s.prefix!r}")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise bad("log_level", f"unknown level {s.log_level!r}")
    if s.log_format not in ("text", "json"):
        raise bad("log_format", f"must be text or json, got {s.log_format!r}")
    if not 0 <= s.metrics_port < 65536:
        raise bad("metrics_port", f"not a port number: {s.metrics_port}")


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read every option from ``env`` (default: ``os.environ``), then apply overrides.

    Raises :class:`ConfigError` naming the variable when a value does not parse.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = env.get(opt.env)
        if raw is None or raw == "":
            continue
        try:
            values[opt.name] = opt.type(raw)
        except ValueError as exc:
            raise ConfigError(str(exc), file="environment", field=opt.env) from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)}", file="flag")
    s = Settings(**values)
    _validate(s)
    return s
