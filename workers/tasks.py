"""Celery tasks: model refits and the periodic missing-data check."""
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
