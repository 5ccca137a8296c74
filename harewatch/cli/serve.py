"""``harewatch serve``: the pages and Alertmanager's v2 API, on 127.0.0.1:9093 by default."""
from __future__ import annotations

import click

from harewatch.cli import Context, pass_ctx


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; beyond loopback, writes need --token or --basic-auth.")
@click.option("--port", default=9093, show_default=True, type=int, help="Port (Alertmanager's by default).")
@click.option("--read-only", is_flag=True, help="No writes at all: no silences, replays or purges.")
@click.option("--token", default=None, help="Bearer token for writes (env HAREWATCH_SERVE_TOKEN).")
@click.option("--basic-auth", default=None, metavar="USER:PASSWORD",
              help="Basic auth for the pages and writes (env HAREWATCH_SERVE_BASIC_AUTH).")
@click.option("--threads", default=8, show_default=True, type=int, help="Requests served at once.")
@pass_ctx
def cli(ctx: Context, host: str, port: int, read_only: bool, token: str | None, basic_auth: str | None,
        threads: int) -> None:
    """Serve harewatch's pages (alerts, series, silences, dead letters, routing) and the part of
    Alertmanager's HTTP API that amtool, Karma and Grafana use, over the router's state."""
    from waitress import create_server

    from harewatch.serve.app import create_app
    from harewatch.serve.guard import Guard, is_loopback
    s = ctx.settings
    try:
        guard = Guard.from_options(host, token or s.serve_token or None, basic_auth or s.serve_basic_auth or None,
                                   read_only)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    app = create_app(ctx.config, s, guard)
    server = create_server(app, host=host, port=port, threads=threads, ident="harewatch")
    where = f"http://{'[' + host + ']' if ':' in host else host}:{server.effective_port}/"
    mode = "read-only" if read_only else ("writes need auth" if guard.auth_configured else
                                          ("writes open to this host" if is_loopback(host) else
                                           "writes off (no --token or --basic-auth beyond loopback)"))
    click.echo(f"harewatch serve: pages and Alertmanager API v2 on {where} ({mode}); Ctrl-C stops")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
