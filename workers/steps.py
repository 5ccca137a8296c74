"""A Celery consumer bootstep with a repeating timer: the shape of the detection and router consumers."""
from __future__ import annotations

from typing import Any

from celery import bootsteps


class TimedConsumerStep(bootsteps.ConsumerStep):
    """Consumes like any ConsumerStep and calls :meth:`on_tick` every ``interval`` seconds in the
    consumer's event loop (so ticks never race the message callbacks)."""

    interval = 1.0

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        self.tref: Any = None
        super().__init__(parent, **kwargs)

    def on_tick(self) -> None:
        raise NotImplementedError

    def before_stop(self) -> None:
        """Last work before the consumers are cancelled (the timer is already off)."""

    def start(self, c: Any) -> None:
        super().start(c)
        self.tref = c.timer.call_repeatedly(self.interval, self.on_tick)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        self.before_stop()
        super().stop(c)
