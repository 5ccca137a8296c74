"""harewatch's Celery workers: ``celery -A harewatch.workers worker --detect all`` (see ``harewatch worker``).

Importing this package does nothing; reading its ``app`` attribute (what
``celery -A harewatch.workers`` does) builds the Celery app from the environment's
settings, with every bootstep and task registered (:func:`celery_app.app`).
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from harewatch.workers.celery_app import app
        return app()
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
