"""Local sinks for the demo and for trying routing: an HTTP endpoint that accepts what the webhook,
Slack, PagerDuty, Teams, DingTalk and WeCom channels send, and an SMTP catcher."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


def summarize(path: str, body: bytes) -> str:
    """One line saying what a delivered notification was about."""
    try:
        doc = json.loads(body)
    except ValueError:
        return f"{path}: {len(body)} bytes"
    if isinstance(doc, dict) and doc.get("version") == "4":        # webhook (Alertmanager v4)
        alerts = doc.get("alerts") or []
        first = alerts[0] if alerts else {}
        an = first.get("anomaly") or {}
        lab = first.get("labels") or {}
        where = ",".join(f"{k}={v}" for k, v in sorted(lab.items())
                         if k not in ("alertname", "metric", "type", "severity", "team"))
        return (f"{doc.get('status', '?').upper():8} {lab.get('team', '?')}: {lab.get('alertname')} "
                f"{an.get('type') or lab.get('type')} ({lab.get('severity')}) on {where} "
                f"value {an.get('value')} expected {round(an['expected'], 2) if isinstance(an.get('expected'), (int, float)) else '?'}"
                f"{f' (+{len(alerts) - 1} more)' if len(alerts) > 1 else ''}")
    if isinstance(doc, dict) and "event_action" in doc:               # PagerDuty
        return f"{doc['event_action']} incident: " + str((doc.get("payload") or {}).get("summary", ""))[:120]
    if isinstance(doc, dict) and "blocks" in doc:                      # Slack
        return f"to {doc.get('channel') or 'the channel'}: {doc.get('text', '')[:120]}"
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):     # Teams, robots
        return doc["text"][:120]
    return f"{len(body)} bytes of JSON"


class HTTPSink:
    """Accepts POSTs on any path; keeps them (GET /received lists them) and reports each to ``on_receive``."""

    def __init__(self, port: int = 8025, host: str = "127.0.0.1",
                 on_receive: Callable[[str, bytes], None] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.received.append({"path": self.path, "at": time.time(), "body": body.decode("utf-8", "replace"),
                                      "headers": dict(self.headers)})
                if on_receive:
                    on_receive(self.path, body)
                out = b'{"status":"success","errcode":0}' if "pagerduty" in self.path or "ding" in self.path else b"ok"
                self.send_response(202 if "pagerduty" in self.path else 200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self) -> None:  # noqa: N802
                out = json.dumps(sink.received).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="harewatch-sink").start()

    def close(self) -> None:
        self.server.shutdown()


class SMTPSink:
    """An SMTP catcher (aiosmtpd) that reports each message's subject."""

    def __init__(self, port: int = 1025, on_receive: Callable[[str, str], None] | None = None) -> None:
        import email

        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001, ANN201
                msg = email.message_from_bytes(envelope.content)
                sink.messages.append(msg)
                if on_receive:
                    on_receive(", ".join(envelope.rcpt_tos), str(msg["Subject"]))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()
        self.port = port

    def close(self) -> None:
        self.controller.stop()
