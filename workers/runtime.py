"""Per-process singletons the workers share: settings, config, Redis store, names."""
from __future__ import annotations

import functools
from typing import Any

from harewatch.settings import Settings, load_settings


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()


@functools.lru_cache(maxsize=1)
def config() -> Any:
    from routing.loader import load_full_config
    return load_full_config(settings().config)


@functools.lru_cache(maxsize=1)
def store() -> Any:
    from workers.store import StateStore
    return StateStore(settings().redis_url, settings().prefix)


def names() -> Any:
    from routing.topology import Names
    return Names(settings().prefix)
