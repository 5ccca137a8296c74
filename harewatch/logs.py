"""Logging for every harewatch process: plain text, or one JSON object per line (HAREWATCH_LOG_FORMAT=json)."""
from __future__ import annotations

import json
import logging
import sys
from typing import Any
import time

from harewatch.settings import Settings

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    """Structured logs: time, level, logger, message, exception, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
               "process": record.processName}
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                doc[k] = v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


# libraries whose INFO lines are chatter to an operator (connection set-up, SMTP dialogue, HTTP pools):
# errors only (what they warn of, harewatch handles and reports itself), unless the log level is DEBUG
CHATTY = ("pika", "amqp", "kombu", "urllib3", "mail.log", "aiosmtpd", "asyncio", "requests")


def setup_logging(settings: Settings) -> None:
    """Logging for the CLI, the workers and beat: text or JSON on stderr, library chatter off."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    quiet = settings.log_level.upper() != "DEBUG"
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.ERROR if quiet else logging.NOTSET)
