"""Every exception harewatch raises, split by what the caller must do about it.

- :class:`InvalidInput`: the message is bad; send it to ``readings.invalid``
  (or report the line) with :attr:`reason`, never retry it.
- :class:`ConfigError`: the operator's file is wrong; fail on load naming
  file, line and field.
- :class:`TransientError`: try again later (the broker holds the delay).
- :class:`PermanentError`: dead-letter now, retrying cannot help.
- :class:`BrokerUnreachable`, :class:`UnroutableMessage`, :class:`PublishNotConfirmed`: operating problems
  reported to the operator as they are (topology drift is reported by
  ``harewatch.broker.declare`` as outcomes, not raised).
"""
from __future__ import annotations


class HarewatchError(Exception):
    """Base class of every harewatch error."""


class InvalidInput(HarewatchError):
    """A reading (or a line of a file) that cannot be accepted.

    ``reason`` is a short machine-friendly code (``parse``, ``missing_field``,
    ``bad_type``, ``not_finite``, ``oversize``, ``ts_out_of_range``, ...);
    ``line`` is the 1-based line of a multi-line body or file when known.
    """

    def __init__(self, message: str, reason: str = "invalid", line: int | None = None,
                 field: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.field = field
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field {field!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
        self.message = message


class ConfigError(HarewatchError):
    """A configuration file or setting that does not validate.

    The message always names where: ``file:line: field: problem``.
    """

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.problem = message
        where = file or "<config>"
        if line is not None:
            where += f":{line}"
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        super().__init__(text)


class TransientError(HarewatchError):
    """A failure that may succeed later (timeouts, 5xx, 429, connection refused).

    ``retry_after`` (seconds) is honoured when the far end asked for it.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(HarewatchError):
    """A failure retrying cannot fix (4xx other than 429, bad address, template error)."""


class BrokerUnreachable(HarewatchError):
    """RabbitMQ (or Redis) could not be reached within the allowed attempts."""


class UnroutableMessage(HarewatchError):
    """A mandatory publish came back: no queue is bound for its routing key. ``returned``: the positions,
    in the batch published, of the messages that came back (the others were routed and confirmed)."""

    def __init__(self, message: str, routing_key: str, body: bytes = b"", returned: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.routing_key = routing_key
        self.body = body
        self.returned = returned


class PublishNotConfirmed(HarewatchError):
    """The broker nacked a publish, or did not confirm it in time: treat the batch as not sent."""
