"""harewatch: real-time anomaly alerting on RabbitMQ and Celery."""
from setuptools import setup

# The user's top-level folders install under one name: harewatch.routing is routing/, and so on.
FOLDERS = {"harewatch.producers": "producers", "harewatch.workers": "workers", "harewatch.routing": "routing",
           "harewatch.templates": "templates"}
PACKAGES = ["harewatch", "harewatch.cli", "harewatch.broker", "harewatch.producers", "harewatch.workers",
            "harewatch.workers.detection", "harewatch.workers.notify", "harewatch.routing", "harewatch.templates",
            "harewatch.serve"]

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
        "harewatch.serve": ["pages/*.html", "static/*"],
    },
    install_requires=[
        "pika>=1.3",
        "celery>=5.3",
        "kombu>=5.3",
        "statsmodels>=0.14",
        "numpy>=1.24",
        "jinja2>=3.1",
        "sentry-sdk>=1.40",
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
    entry_points={"console_scripts": ["harewatch=harewatch.cli:main"]},
)
