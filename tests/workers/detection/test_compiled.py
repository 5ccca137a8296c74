"""The compiled detector (mypyc, built at install): it is what runs, it decides exactly as the sources do,
and a checkout edited since its install runs its sources rather than a stale build."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import harewatch.workers.detection as detection
from harewatch.workers.detection import _compiled_is_current

# every shape of the corpus, anomalies injected, through the backtest: a digest of each point's decision
# and of the final state's bytes
DIGEST = """
import hashlib, sys
from harewatch.workers.detection import IMPLEMENTATION, Detector, DetectorSettings
from harewatch.workers.detection.backtest import row
from harewatch.workers.detection.corpus import SHAPES, injected
h = hashlib.sha256()
for shape in SHAPES:
    s = injected(shape, 1, days=10)
    det = Detector(DetectorSettings())
    state = det.new_state("series")
    for t, x in zip(s.ts.tolist(), s.x.tolist()):
        if state.last_ts is not None and state.interval:
            missing = det.missing_due(state, t - 1e-6)
            h.update(repr(missing and (missing.type, missing.surprise, missing.lower, missing.upper)).encode())
        h.update(repr(sorted(row(det.update(state, t, x)).items())).encode())
    h.update(state.to_bytes())
print(IMPLEMENTATION, h.hexdigest())
"""


def digest(pure: bool) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HAREWATCH_PURE"}
    if pure:
        env["HAREWATCH_PURE"] = "1"
    out = subprocess.run([sys.executable, "-c", DIGEST], env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)
    impl, h = out.stdout.split()
    return impl, h


def test_the_install_runs_the_compiled_detector():
    """scripts/venv.sh (pip install) compiles it; a silent fallback to the sources would halve the speed."""
    assert detection.IMPLEMENTATION == "compiled", (
        "the detector runs from its sources: reinstall harewatch (scripts/venv.sh test) with a C compiler")


def test_compiled_and_source_detectors_decide_alike():
    """Every point of every corpus shape, anomalies injected: the same decisions, scores and final state."""
    compiled, pure = digest(pure=False), digest(pure=True)
    assert compiled[0] == "compiled" and pure[0] == "source"
    assert compiled[1] == pure[1]


def test_an_edited_source_is_not_shadowed_by_its_old_build(tmp_path):
    here = Path(detection.__file__).parent
    copy = tmp_path / "detection"
    shutil.copytree(here, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _compiled_is_current(copy)
    src = copy / "detector.py"
    src.write_text(src.read_text() + "\n# edited\n")
    assert not _compiled_is_current(copy)
    (copy / "compiled.json").unlink()
    src.write_text(hashlib.sha256(b"").hexdigest())
    assert not _compiled_is_current(copy)
