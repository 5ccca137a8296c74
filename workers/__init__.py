"""harewatch's Celery workers: ``celery -A workers worker --detect all`` (see ``harewatch worker``).

Importing this package builds the Celery app from the environment and
registers the bootsteps (detection consumer) and tasks.
"""
from workers.celery_app import app

from workers import detect, route, tasks  # noqa: E402,F401  (register bootsteps and tasks)
from workers.notify import task as _notify_task  # noqa: E402,F401
from workers import health  # noqa: E402,F401

__all__ = ["app"]
