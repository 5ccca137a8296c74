"""harewatch: real-time anomaly alerting on RabbitMQ and Celery.

The shared pieces live here: settings, errors, message schemas and the CLI.
Producers, workers and routing are sibling packages (see DESIGN §7).
"""
__version__ = "0.1.0"
