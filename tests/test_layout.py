"""The layout of DESIGN §7: one installed name, and imports that run one way
(cli -> workers -> routing, producers, detection -> broker -> core)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# folder in the checkout -> the package it installs as
FOLDERS = {"harewatch": "harewatch", "routing": "harewatch.routing", "producers": "harewatch.producers",
           "workers": "harewatch.workers", "templates": "harewatch.templates"}
CORE = ("harewatch.settings", "harewatch.errors", "harewatch.messages", "harewatch.times", "harewatch.durations",
        "harewatch.logs")
# a layer may import its own and lower layers only
LAYERS = [("core", CORE), ("broker", ("harewatch.broker",)),
          ("domain", ("harewatch.routing", "harewatch.producers", "harewatch.workers.detection")),
          ("workers", ("harewatch.workers", "harewatch.serve")), ("cli", ("harewatch.cli", "harewatch.__main__"))]


def layer_of(module: str) -> int:
    best, found = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, found = len(p), i
    return found


def modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def imports(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return found


def test_only_harewatch_is_installed_at_the_top():
    out = subprocess.run([sys.executable, "-c", "import harewatch.routing, harewatch.workers, harewatch.producers, "
                          "harewatch.templates\nfor n in ('routing', 'workers', 'producers', 'templates'):\n"
                          "    try:\n        __import__(n)\n    except ImportError:\n        continue\n"
                          "    raise SystemExit(n + ' is importable')"], cwd="/", capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_run_one_way(module):
    mine = layer_of(module)
    wrong = []
    for name, line in imports(modules()[module]):
        if name.split(".")[0] in ("routing", "workers", "producers", "templates"):
            wrong.append(f"line {line}: {name} (import harewatch.{name})")
        elif name.startswith("harewatch") and layer_of(name) > mine:
            wrong.append(f"line {line}: {name} is above {module}")
    assert not wrong, "\n".join(wrong)
