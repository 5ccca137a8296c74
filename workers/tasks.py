"""Celery tasks: model refits, and the periodic missing-data check and retirement of silent series."""
from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from harewatch.workers import runtime
from harewatch.workers.engine import Engine, refit_series
from harewatch.workers.events import publish_events

log = logging.getLogger("harewatch.tasks")


@shared_task(name="harewatch.refit", ignore_result=True, acks_late=True)
def refit(fp: str, metric: str, upto: int) -> str:
    """Fit a new seasonal model for one series from its stored history (off the consuming path)."""
    return refit_series(runtime.config(), runtime.store(), fp, metric, upto)


@shared_task(name="harewatch.check_missing", bind=True, ignore_result=True, acks_late=True)
def check_missing(self: Any) -> int:
    """Raise ``missing_data`` for series that stopped reporting past their expected interval."""
    events = Engine(runtime.config(), runtime.store()).missing()
    publish_events(self.app, events)
    return len(events)


@shared_task(name="harewatch.retire_series", bind=True, ignore_result=True, acks_late=True)
def retire_series(self: Any) -> int:
    """Delete the state of series silent past their ``retire_after`` and resolve their open
    ``missing_data`` alert (a series that comes back starts anew)."""
    from collections import Counter

    from harewatch.workers import metrics
    gone, events = Engine(runtime.config(), runtime.store()).retire()
    publish_events(self.app, events)
    for metric, n in Counter(r.metric for r in gone).items():
        metrics.default().retired.labels(metric).inc(n)
    if gone:
        log.info("retired %d series that stopped reporting", len(gone))
    return len(gone)
