"""Per-process singletons the workers share: settings, config, Redis store, names."""
from __future__ import annotations

import functools
from typing import Any

from harewatch.settings import Settings, load_settings


_settings: Settings | None = None


def use(settings: Settings) -> None:
    """Run this process with ``settings`` (before anything asks for them); else they come from the environment."""
    global _settings
    _settings = settings
    for cached in (config, store):
        cached.cache_clear()


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings




@functools.lru_cache(maxsize=1)
def config() -> Any:
    from harewatch.routing.loader import load_full_config
    return load_full_config(settings().config)


@functools.lru_cache(maxsize=1)
def store() -> Any:
    from harewatch.workers.store import StateStore
    return StateStore(settings().redis_url, settings().prefix)


def names() -> Any:
    from harewatch.broker.topology import Names
    return Names(settings().prefix)
