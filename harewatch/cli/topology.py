"""``harewatch topology declare | show | export``."""
from __future__ import annotations

import json
import os
import sys

import click

from harewatch.cli import EXIT_DRIFT, Context, pass_ctx


def _topology(ctx: Context):  # noqa: ANN202
    from harewatch.broker.topology import topology_from_config
    return topology_from_config(ctx.config, ctx.settings.prefix)


@click.group("topology")
def cli() -> None:
    """Declare, draw and export the broker topology."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_ctx
def declare(ctx: Context, as_json: bool) -> None:
    """Create exchanges, queues and bindings idempotently; report drift (exit 3)."""
    from harewatch.broker.declare import declare as do_declare

    outcomes = do_declare(_topology(ctx), ctx.settings)
    if as_json:
        click.echo(json.dumps([{"kind": o.kind, "name": o.name, "status": o.status,
                                "drift": [d.__dict__ for d in o.drifts]} for o in outcomes], indent=2, default=str))
    else:
        for o in outcomes:
            click.echo(f"{o.status:8} {o.kind:8} {o.name}")
            for d in o.drifts:
                click.echo(f"         drift: {d}")
        counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("created", "kept", "drift")}
        click.echo(f"{counts['created']} created, {counts['kept']} kept, {counts['drift']} drifted "
                   f"(vhost {ctx.settings.vhost!r})")
    if any(o.status == "drift" for o in outcomes):
        if not as_json:
            click.echo("Drifted entities were left as they are. Delete them (after draining) or change the "
                       "config to match, then declare again.", err=True)
        sys.exit(EXIT_DRIFT)


@cli.command()
@pass_ctx
def show(ctx: Context) -> None:
    """Draw the intended topology as a tree."""
    from harewatch.broker.topology import render_tree

    click.echo(render_tree(_topology(ctx)))


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="-", help="File to write (default stdout).")
@click.option("--vhost", default=None, help="Vhost in the definitions (default: the one in AMQP_URL).")
@click.option("--users", default="", help="Comma list of components to create least-privilege users for "
              "(producer,detector,router,notifier,operator); passwords from HAREWATCH_<COMPONENT>_PASSWORD.")
@pass_ctx
def export(ctx: Context, output: str, vhost: str | None, users: str) -> None:
    """Write a RabbitMQ definitions file (import it in the management UI)."""
    from harewatch.errors import ConfigError
    from harewatch.broker.topology import definitions_json

    pw: dict[str, str] = {}
    for comp in filter(None, (u.strip() for u in users.split(","))):
        var = f"HAREWATCH_{comp.upper()}_PASSWORD"
        if not os.environ.get(var):
            raise ConfigError(f"set {var} to give user harewatch-{comp} a password", file="environment", field=var)
        pw[comp] = os.environ[var]
    text = definitions_json(_topology(ctx), vhost or ctx.settings.vhost, pw)
    if output == "-":
        click.echo(text)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        click.echo(f"wrote {output}", err=True)
