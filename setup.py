"""harewatch: real-time anomaly alerting on RabbitMQ and Celery."""
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from setuptools import setup

# The user's top-level folders install under one name: harewatch.routing is routing/, and so on.
FOLDERS = {"harewatch.producers": "producers", "harewatch.workers": "workers", "harewatch.routing": "routing",
           "harewatch.templates": "templates"}
PACKAGES = ["harewatch", "harewatch.cli", "harewatch.broker", "harewatch.producers", "harewatch.workers",
            "harewatch.workers.detection", "harewatch.workers.notify", "harewatch.routing", "harewatch.templates",
            "harewatch.serve"]

# The detector's per-point code, compiled to C by mypyc (the same typed Python; about twice as fast).
# HAREWATCH_PURE=1, or no C compiler, installs it as plain Python; harewatch.workers.detection says which
# runs, and falls back to the source wherever a compiled module no longer matches it (an edited checkout).
COMPILED = ("calibration", "detector")
DETECTION = Path("workers/detection")


def compiled_detector() -> list:
    """The mypyc extensions (optional: a failed compile warns and leaves the plain modules), and the record
    of the sources they were built from (``workers/detection/compiled.json``)."""
    record = DETECTION / "compiled.json"
    record.unlink(missing_ok=True)
    if os.environ.get("HAREWATCH_PURE"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    # mypyc names a module by its folders: stage the detection package as harewatch/workers/detection
    stage = Path("build/mypyc-src")
    shutil.rmtree(stage, ignore_errors=True)
    pkg = stage / "harewatch/workers/detection"
    pkg.mkdir(parents=True)
    for init in (stage / "harewatch/__init__.py", stage / "harewatch/workers/__init__.py"):
        init.write_text("")
    shutil.copy("harewatch/times.py", stage / "harewatch/times.py")
    for f in DETECTION.glob("*.py"):
        shutil.copy(f, pkg / f.name)
    # its own type-check settings (the build environment has none of harewatch's dependencies installed), its
    # cache under build/ with the rest
    (stage / "mypy.ini").write_text("[mypy]\nignore_missing_imports = True\ncache_dir = build/mypy-cache\n")
    try:
        exts = mypycify([str(pkg / f"{m}.py") for m in COMPILED] + ["--config-file", str(stage / "mypy.ini")],
                        opt_level="3", target_dir="build/mypyc", group_name="harewatch.workers.detection.compiled")
    except (Exception, SystemExit) as exc:   # mypyc exits on a type error: install the plain modules
        print(f"harewatch: the detector is not compiled ({exc}); it runs as plain Python", file=sys.stderr)
        return []
    for e in exts:
        e.optional = True
    record.write_text(json.dumps({m: hashlib.sha256((DETECTION / f"{m}.py").read_bytes()).hexdigest()
                                  for m in COMPILED}))
    return exts


setup(
    name="harewatch",
    version="0.1.0",
    description="Real-time anomaly alerting on RabbitMQ and Celery: seasonal detection, "
    "Alertmanager-style routing, per-channel notifiers with dead-letter queues.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=PACKAGES,
    package_dir=FOLDERS,
    package_data={
        "harewatch.routing": ["*.yaml"],
        "harewatch.templates": ["*/*.j2"],
        "harewatch": ["py.typed"],
        "harewatch.workers.detection": ["compiled.json"],
        "harewatch.serve": ["pages/*.html", "static/*"],
    },
    install_requires=[
        "pika>=1.3",
        "celery>=5.3",
        "kombu>=5.3",
        "statsmodels>=0.14",
        "numpy>=1.24",
        "jinja2>=3.1",
        # 3.0 replaced send_default_pii (mypy rejects our send_default_pii=False) with data_collection, which
        # collects user data by default: stay on 2.x until the Sentry hook is moved over deliberately
        "sentry-sdk>=1.40,<3",
        "redis>=5.0",
        "click>=8.1",
        "PyYAML>=6.0",
        "requests>=2.31",
        "prometheus-client>=0.19",
        "pillow>=10",
        "aiosmtpd>=1.4",
        "google-re2>=1.1",   # Alertmanager's regex dialect (Go RE2), for every matcher
        "orjson>=3.9",       # anomaly events (with their chart windows) parsed at the router's pace
        "hiredis>=2.0",      # redis-py parses replies in C (the router reads thousands of alerts per flush)
        "flask>=3.0",        # harewatch serve: pages and Alertmanager's API (Pallets, Jinja2 already here)
        "waitress>=3.0",     # ... served by a pure-Python production WSGI server (no compiler, no reverse proxy)
    ],
    extras_require={
        "test": ["pytest>=8", "aiosmtpd>=1.4", "mypy>=1.8", "selenium>=4.20"],
        "dev": ["pytest>=8", "aiosmtpd>=1.4", "mypy", "ruff"],
    },
    ext_modules=compiled_detector(),
    entry_points={"console_scripts": ["harewatch=harewatch.cli:main"]},
)
