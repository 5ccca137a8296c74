"""Loading the whole config: metric settings, channels and the routing tree."""
from __future__ import annotations

import os
from typing import Mapping

from harewatch.routing.config import Config, load_config
from harewatch.routing.tree import parse_routing


def load_full_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """The validated config at ``path`` with its routing tree (``cfg.routing``)."""
    cfg = load_config(path, env)
    cfg.routing = parse_routing(cfg.raw, cfg.path)
    return cfg
