"""Connections to RabbitMQ from the settings (pika for clients, kombu for Celery and declares)."""
from __future__ import annotations

import urllib.parse
from typing import Any

from harewatch.settings import Settings


def pika_parameters(settings: Settings, **overrides: Any) -> Any:
    """``pika.URLParameters`` for the settings' URL, with TLS options applied for amqps://."""
    import pika

    params = pika.URLParameters(settings.amqp_url)
    ctx = settings.ssl_context()
    if ctx is not None:
        host = urllib.parse.urlsplit(settings.amqp_url).hostname or "localhost"
        params.ssl_options = pika.SSLOptions(ctx, server_hostname=host)
    for k, v in overrides.items():
        setattr(params, k, v)
    return params


def kombu_url(amqp_url: str) -> str:
    """The same broker URL for kombu and Celery, over py-amqp (``pyamqp://``, ``pyamqps://``)."""
    return amqp_url.replace("amqps://", "pyamqps://", 1).replace("amqp://", "pyamqp://", 1)


def kombu_connection(settings: Settings, **kw: Any) -> Any:
    """A kombu ``Connection`` (py-amqp transport) for the settings' URL."""
    from kombu import Connection

    url = kombu_url(settings.amqp_url)
    ctx = settings.ssl_context()
    if ctx is not None:
        kw.setdefault("ssl", ctx)
    kw.setdefault("connect_timeout", 10)
    return Connection(url, **kw)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for logs and messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
