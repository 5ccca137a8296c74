"""Celery tasks: model refits and the periodic missing-data check."""
from __future__ import annotations

from celery import shared_task

import logging

from workers import runtime

log = logging.getLogger("harewatch.tasks")


@shared_task(name="harewatch.refit", ignore_result=True, acks_late=True)
def refit(fp: str, metric: str, upto: int) -> str:
    """Fit a new seasonal model for one series from its stored history (off the consuming path)."""
    from workers.engine import refit_series
    return refit_series(runtime.config(), runtime.store(), fp, metric, upto)


@shared_task(name="harewatch.check_missing", ignore_result=True, acks_late=True)
def check_missing() -> int:
    """Raise ``missing_data`` for series that stopped reporting past their expected interval."""
    from workers.detect import publish_events
    from workers.engine import Engine

    events = Engine(runtime.config(), runtime.store()).missing()
    publish_events(events)
    return len(events)
