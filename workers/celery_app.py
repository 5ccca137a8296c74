"""The Celery app, configured for RabbitMQ the way harewatch runs in production.

Quorum queues (declared from the topology module, so Celery never redeclares
them differently), late acks with reject-on-worker-lost, prefetch 1 for
tasks, no result backend, publisher confirms, endless broker reconnection,
no remote-control or event queues, Sentry when ``SENTRY_DSN`` is set.
"""
from __future__ import annotations

import functools
from typing import Any

import click
from celery import Celery
from celery.signals import setup_logging, worker_process_init

from harewatch.settings import Settings
from harewatch.routing.loader import load_full_config



def _no_native_delayed_delivery() -> None:
    """harewatch never uses Celery ETA/countdown (retry delays live in its own notify.retry.* queues),
    so Celery's native delayed delivery, which would add 28 celery_delayed_* queues, stays off."""
    from celery.worker.consumer.delayed_delivery import DelayedDelivery

    DelayedDelivery.include_if = lambda self, c: False


def create_app(settings: Settings, config: Any = None) -> Celery:
    """The harewatch Celery app for ``settings``, with its bootsteps and tasks registered.

    Nothing happens at import: whoever starts a worker (``harewatch worker``, or
    ``celery -A harewatch.workers`` through :func:`workers.__getattr__`) calls this, and a
    bad config fails here, naming the file and line.
    """

    from harewatch.broker.connection import kombu_url
    from harewatch.broker.topology import Names, topology_from_config

    cfg = config if config is not None else load_full_config(settings.config)
    _no_native_delayed_delivery()
    names = Names(settings.prefix)
    # the tasks and notify queues, declared exactly as the topology has them, so `-Q` works on them
    topology = topology_from_config(cfg, settings.prefix)
    queues = [topology.queue(names.tasks), *topology.notify_queues.values()]
    app = Celery("harewatch")
    url = kombu_url(settings.amqp_url)
    app.conf.update(
        broker_url=url,
        broker_use_ssl=settings.ssl_context() is not None and {"cert_reqs": 2 if settings.amqp_verify else 0,
                                                               "ca_certs": settings.amqp_ca_file or None,
                                                               "certfile": settings.amqp_cert_file or None,
                                                               "keyfile": settings.amqp_key_file or None},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_heartbeat=30,
        broker_transport_options={"confirm_publish": True},
        broker_pool_limit=4,
        task_default_queue=names.tasks,
        task_default_exchange="",
        task_default_routing_key=names.tasks,
        task_queues=queues,
        task_create_missing_queues=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        worker_detect_quorum_queues=True,
        beat_schedule={
            "missing-data": {"task": "harewatch.check_missing", "schedule": 30.0},
            "self-check": {"task": "harewatch.self_check", "schedule": 60.0},
            "retire-series": {"task": "harewatch.retire_series", "schedule": 300.0},
        },
        timezone="UTC",
    )
    app.harewatch_settings = settings
    app.harewatch_names = names
    _sentry(settings)
    setup_logging.connect(_logging, weak=False, dispatch_uid="harewatch.logging")
    worker_process_init.connect(_child_sentry, weak=False, dispatch_uid="harewatch.sentry")
    # registering: tasks are shared_task (bound to every app), bootsteps are added here
    from harewatch.workers import health, tasks  # noqa: F401
    from harewatch.workers.detect import DetectService
    from harewatch.workers.notify import task as _notify_task  # noqa: F401
    from harewatch.workers.route import RouterService
    app.steps["worker"].add(DetectService)
    app.steps["worker"].add(RouterService)
    for opt in (click.Option(["--detect"], default=None,
                             help="harewatch: consume these metrics' detect queues (comma list, 'all', 'default')."),
                click.Option(["--route"], is_flag=True, default=False,
                             help="harewatch: run the router on alerts.route.")):
        app.user_options["worker"].add(opt)
    return app


def _sentry(settings: Settings) -> None:
    if not settings.sentry_dsn:
        return
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    sentry_sdk.init(dsn=settings.sentry_dsn, integrations=[CeleryIntegration(monitor_beat_tasks=True)],
                    send_default_pii=False)


@functools.lru_cache(maxsize=1)
def app() -> Celery:
    """This process's Celery app, built once from the process's settings and config (:mod:`runtime`)."""
    from harewatch.workers import runtime
    return create_app(runtime.settings(), runtime.config())


def _child_sentry(**_: object) -> None:  # prefork children need their own client
    from harewatch.workers import runtime
    _sentry(runtime.settings())


def _logging(**_: object) -> None:
    """harewatch configures logging itself (text or JSON), for workers and beat alike."""
    from harewatch.logs import setup_logging as configure
    from harewatch.workers import runtime
    configure(runtime.settings())
