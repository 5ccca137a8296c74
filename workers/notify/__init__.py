"""Notifiers: rendering (pure), channel senders (HTTP/SMTP), and the Celery task with broker-held retries."""
