"""Loading the whole config: metric settings, channels and (when present) the routing tree."""
from __future__ import annotations

import os
from typing import Mapping

from routing.config import Config, load_config


def load_full_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """The validated config at ``path``, with the routing tree attached when the file has one."""
    return load_config(path, env)
