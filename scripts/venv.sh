#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install harewatch into it with the given extras.
# One line per step; pip's own output goes to .venv/install.log, shown only if the install fails.
set -eu
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.13 python3.12 python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then PY="$c"; break; fi
  done
fi
[ -n "$PY" ] || { echo "harewatch needs Python 3.11 or newer" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PY" -c 'import sys; print("Python %d.%d" % sys.version_info[:2])')" >&2
  "$PY" -m venv .venv
fi
# reinstall when the build changed, or the sources compiled at install (setup.py: the detector's per-point
# code); an install with extras also serves the plain one (the demo beside the tests reinstalls nothing)
stamp=".venv/.installed${extras:+-$extras}"
[ -n "$extras" ] || [ -f "$stamp" ] || stamp=$(ls -t .venv/.installed* 2>/dev/null | head -n 1 || true)
stamp="${stamp:-.venv/.installed}"
stale=""
for f in setup.py pyproject.toml workers/detection/calibration.py workers/detection/detector.py; do
  if [ "$f" -nt "$stamp" ]; then stale=1; fi
done
if [ ! -f "$stamp" ] || [ -n "$stale" ]; then
  log=.venv/install.log
  echo "setup: installing harewatch${extras:+ with its $extras extras} and its dependencies into .venv (a minute or two; log: $log)" >&2
  if ! { .venv/bin/python -m pip install -q --upgrade pip && \
         .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "setup: the install failed (whole log: $log)" >&2
    exit 1
  fi
  touch "$stamp"
fi
