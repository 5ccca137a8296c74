"""The ``harewatch`` command line: thin click commands over library functions.

Exit codes: 0 ok, 1 failure of the operation, 2 usage or config error,
3 topology drift, 4 broker unreachable.
"""
from __future__ import annotations

import sys
from typing import Any

import click

from harewatch.errors import BrokerUnreachable, ConfigError, HarewatchError
from harewatch.settings import Settings, load_settings

EXIT_FAILED, EXIT_CONFIG, EXIT_DRIFT, EXIT_UNREACHABLE = 1, 2, 3, 4


class Context:
    """What every command needs: settings (env + flags) and the config, loaded once on demand."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._config: Any = None

    @property
    def config(self) -> Any:
        if self._config is None:
            from harewatch.routing.loader import load_full_config
            self._config = load_full_config(self.settings.config)
        return self._config


pass_ctx = click.make_pass_decorator(Context)


def label_pairs(pairs: tuple[str, ...], unquote: bool = True) -> dict[str, str]:
    """``name=value`` arguments as labels (a value's surrounding double quotes dropped unless ``unquote``
    is off); a usage error names a malformed one."""
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"labels are name=value, got {p!r}")
        out[k] = v.strip('"') if unquote else v
    return out


class HarewatchGroup(click.Group):
    """Turns harewatch errors into one clear line on stderr and a meaningful exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"harewatch: config error: {exc}", err=True)
            sys.exit(EXIT_CONFIG)
        except BrokerUnreachable as exc:
            click.echo(f"harewatch: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except HarewatchError as exc:
            click.echo(f"harewatch: {exc}", err=True)
            sys.exit(EXIT_FAILED)


@click.group(cls=HarewatchGroup)
@click.option("--config", "config", envvar="HAREWATCH_CONFIG", default=None,
              help="Config file (default: routing/routes.yaml; env HAREWATCH_CONFIG).")
@click.option("--amqp-url", default=None, help="RabbitMQ URL (env AMQP_URL).")
@click.option("--redis-url", default=None, help="Redis URL (env REDIS_URL).")
@click.option("--prefix", default=None, help="Name prefix for exchanges and queues (env HAREWATCH_PREFIX).")
@click.option("-v", "--verbose", is_flag=True, help="Log everything, libraries included (HAREWATCH_LOG_LEVEL=DEBUG).")
@click.version_option(package_name="harewatch")
@click.pass_context
def main(ctx: click.Context, config: str | None, amqp_url: str | None, redis_url: str | None,
         prefix: str | None, verbose: bool) -> None:
    """harewatch: anomaly alerting on RabbitMQ and Celery."""
    try:
        settings = load_settings(config=config, amqp_url=amqp_url, redis_url=redis_url, prefix=prefix,
                                 log_level="DEBUG" if verbose else None)
    except ConfigError as exc:
        click.echo(f"harewatch: config error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    from harewatch.logs import setup_logging
    setup_logging(settings)
    ctx.obj = Context(settings)


def _register() -> None:
    import importlib

    for mod in ("topology", "publish", "simulate", "backtest", "routes", "silence", "dlq", "worker", "demo", "series",
                "serve"):
        try:
            module = importlib.import_module(f"harewatch.cli.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name == f"harewatch.cli.{mod}":
                continue
            raise
        main.add_command(module.cli)
        if hasattr(module, "sink_cli"):
            main.add_command(module.sink_cli)


_register()
