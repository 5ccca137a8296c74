"""The detector: pure computation, no broker code.

>>> from workers.detection import Detector, DetectorSettings
>>> det = Detector(DetectorSettings(periods=()))
>>> state = det.new_state()
>>> results = [det.update(state, 60.0 * i, 10.0 + (i % 3)) for i in range(100)]
>>> det.update(state, 6000.0, 500.0).anomaly
True

The per-point modules (``calibration``, ``detector``) are compiled to C by mypyc when harewatch is
installed with a C compiler (see setup.py). The compiled build is used only while it matches these
very sources (``compiled.json`` records their hashes at build time): in a checkout edited since its
install, or with ``HAREWATCH_PURE=1``, the sources run instead, with the same results, about half as
fast. :data:`IMPLEMENTATION` says which runs.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

COMPILED = ("calibration", "detector")   # in import order


def _compiled_is_current(here: Path) -> bool:
    """A compiled build lies beside the sources and was built from them as they are now."""
    if not _has_build(here):
        return False
    try:
        built = json.loads((here / "compiled.json").read_text())
    except (OSError, ValueError):
        return False
    return all(built.get(m) == hashlib.sha256((here / f"{m}.py").read_bytes()).hexdigest() for m in COMPILED)


def _has_build(here: Path) -> bool:
    return any((here / f"{m}{suffix}").exists() for m in COMPILED for suffix in EXTENSION_SUFFIXES)


def _choose() -> str:
    """``compiled`` or ``source``; for the latter, the modules are loaded from their ``.py`` files now,
    ahead of any compiled module that would otherwise shadow them."""
    here = Path(__file__).parent
    pure = bool(os.environ.get("HAREWATCH_PURE"))
    if not _has_build(here):
        return "source"
    if not pure and _compiled_is_current(here):
        return "compiled"
    if not pure:
        logging.getLogger("harewatch.detection").warning(
            "the compiled detector was built from other sources than these; running the sources "
            "(reinstall harewatch, e.g. scripts/venv.sh, to compile them)")
    for m in COMPILED:
        spec = importlib.util.spec_from_file_location(f"{__name__}.{m}", here / f"{m}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        globals()[m] = module
    return "source"


IMPLEMENTATION = _choose()

from harewatch.workers.detection.detector import Detector, DetectorSettings, PointResult, SeriesState  # noqa: E402

__all__ = ["Detector", "DetectorSettings", "PointResult", "SeriesState", "IMPLEMENTATION"]
