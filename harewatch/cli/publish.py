"""``harewatch publish``: one reading from the command line, or a file / stdin of them."""
from __future__ import annotations

import collections
import contextlib
import re
import sys
import time
from typing import IO, Any, Iterable, Iterator

import click

from harewatch.cli import EXIT_FAILED, Context, label_pairs, pass_ctx
from harewatch.errors import HarewatchError, InvalidInput


def _speed(text: str | None) -> float | None:
    if text is None:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)x", text.strip())
    if not m or float(m.group(1)) <= 0:
        raise click.BadParameter("use e.g. 60x (sixty times real time)", param_hint="--speed")
    return float(m.group(1))


@click.command("publish")
@click.argument("metric", required=False)
@click.argument("value", required=False, type=float)
@click.argument("labels", nargs=-1)
@click.option("--ts", default=None, help="Event time (RFC 3339 or epoch s/ms/ns); default now.")
@click.option("-f", "--file", "path", type=click.Path(allow_dash=True), default=None,
              help="Publish every reading in a file (.csv, .jsonl, .influx, .graphite), or - for stdin.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "influx", "graphite"]), default=None,
              help="Format of --file (default: from its extension; stdin: sniffed).")
@click.option("--speed", default=None, help="Replay at this multiple of real time, by event time (e.g. 60x).")
@click.option("--as-fast-as-possible", "fast", is_flag=True, help="Publish without pacing (the default).")
@click.option("--batch", default=500, show_default=True, help="Readings per message when publishing a file.")
@click.option("--label", "extra", multiple=True, help="Extra label k=v added to every reading of a file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
def cli(ctx: Context, metric: str | None, value: float | None, labels: tuple[str, ...], ts: str | None,
        path: str | None, fmt: str | None, speed: str | None, fast: bool, batch: int, extra: tuple[str, ...],
        quiet: bool) -> None:
    """Publish readings to the readings exchange.

    \b
      harewatch publish cpu_util 73.2 host=web-01 team=payments
      harewatch publish --file readings.csv --speed 60x
      generate | harewatch publish -f - --format influx
    """
    from harewatch.times import parse_ts
    from harewatch.messages import parse_json_reading
    from harewatch.producers.publisher import Publisher

    if path is None:
        if metric is None or value is None:
            raise click.UsageError("give METRIC VALUE [label=value ...] or --file")
        labs = label_pairs(labels, unquote=False)
        obj = {"metric": metric, "value": value, "labels": labs, "ts": parse_ts(ts) if ts else time.time()}
        try:
            reading = parse_json_reading(obj)
        except InvalidInput as exc:
            raise click.BadParameter(str(exc)) from None
        with Publisher(settings=ctx.settings) as pub:
            pub.publish(reading)
        click.echo(f"published {reading.series} = {reading.value} to {pub.exchange} "
                   f"with routing key {reading.routing_key()}")
        return
    if metric is not None:
        raise click.UsageError("give either METRIC VALUE or --file, not both")
    if fast and speed:
        raise click.UsageError("--speed and --as-fast-as-possible contradict each other")
    factor = _speed(speed)
    published, rejected = publish_file(ctx, path, fmt, factor, batch, label_pairs(extra, unquote=False), quiet)
    click.echo(f"{published} readings published, {rejected} lines rejected", err=False)
    if rejected:
        sys.exit(EXIT_FAILED)


def publish_file(ctx: Context, path: str, fmt: str | None, speed: float | None, batch: int,
                 extra: dict[str, str], quiet: bool) -> tuple[int, int]:
    """Stream a file through the publisher; bad lines are reported and skipped."""
    from harewatch.producers.formats import file_format, parse_file_lines, sniff
    from harewatch.producers.publisher import Publisher

    stream: IO[str]
    lines: Iterable[str]
    if path == "-":
        stream = sys.stdin   # text, as click's own "-" would give
        if fmt is None:
            first = stream.readline()
            fmt = "csv" if first.lower().startswith("metric,") or ",value" in first.lower() else sniff(first.encode())
            if fmt == "json":
                fmt = "jsonl"
            import itertools
            lines = itertools.chain([first], stream)
        else:
            lines = stream
        total = None
    else:
        fmt = fmt or file_format(path)
        stream = open(path, encoding="utf-8", newline="")
        lines = stream
        try:
            import os
            total = os.path.getsize(path)
        except OSError:
            total = None
    read = [0]

    def counted(src: Iterable[str]) -> Iterator[str]:
        """The lines, counting the bytes read for the progress bar."""
        for line in src:
            read[0] += len(line)
            yield line

    lines = counted(lines)
    published = rejected = 0
    first_event: float | None = None
    wall0 = time.monotonic()
    show = not quiet and sys.stderr.isatty()
    handed = ConfirmedLines()
    pub = Publisher(settings=ctx.settings, batch_size=max(1, batch), linger=0.5)
    with _resumable(pub, path, handed):
        bar = click.progressbar(length=total or 0, label="publishing", file=sys.stderr) if show and total else None
        pos = 0
        try:
            for n, got in parse_file_lines(lines, fmt, extra, now=time.time()):
                if isinstance(got, InvalidInput):
                    rejected += 1
                    click.echo(f"{path}:{n}: rejected: {got}", err=True)
                    continue
                if speed:
                    ev = got[0].ts
                    first_event = ev if first_event is None else first_event
                    due = wall0 + (ev - first_event) / speed
                    wait = due - time.monotonic()
                    if wait > 0:
                        pub.flush()
                        time.sleep(wait)
                pub.publish(got)
                published += len(got)
                handed.add(n, published, pub.sent_readings)
                if bar is not None:
                    bar.update(read[0] - pos)
                    pos = read[0]
        finally:
            if bar is not None:
                bar.render_finish()
            if path != "-":
                stream.close()
    return published, rejected


class ConfirmedLines:
    """The last input line whose readings the broker has all confirmed, keeping only the lines in flight."""

    def __init__(self) -> None:
        self.waiting: collections.deque[tuple[int, int]] = collections.deque()   # (line, readings up to it)
        self.line = 0

    def add(self, line: int, handed: int, confirmed: int) -> None:
        self.waiting.append((line, handed))
        self.confirm(confirmed)

    def confirm(self, confirmed: int) -> int:
        while self.waiting and self.waiting[0][1] <= confirmed:
            self.line = self.waiting.popleft()[0]
        return self.line


@contextlib.contextmanager
def _resumable(pub: Any, path: str, handed: ConfirmedLines) -> Iterator[None]:
    """Close the publisher; if publishing failed, say how far the broker confirmed, so the user can resume."""
    try:
        with pub:
            yield
    except HarewatchError:
        confirmed = pub.sent_readings
        upto = handed.confirm(confirmed)
        click.echo(f"{path}: {confirmed} readings confirmed by the broker: every reading of lines 1-{upto}; "
                   f"resume from line {upto + 1}", err=True)
        raise
