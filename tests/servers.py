"""Real local servers the channel tests talk to over real sockets: an HTTP recorder and an SMTP server."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 200

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HTTPRecorder:
    """Records every POST; answers each path with the next scripted (status, body, headers), else 200."""

    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    script: dict[str, list[tuple[int, str, dict[str, str]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def respond(self, path: str, *responses: tuple[int, str] | tuple[int, str, dict[str, str]]) -> None:
        self.script[path] = [(r[0], r[1], r[2] if len(r) > 2 else {}) for r in responses]

    def on(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def wait(self, path: str, n: int, timeout: float = 30.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return self.on(path)


def start_http() -> HTTPRecorder:
    rec: HTTPRecorder

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if len(body) < length:
                # the client died mid-request (a SIGKILLed notifier): nothing was delivered, as with any
                # real server, which never answers a truncated body; recording it made a test read ""
                self.close_connection = True
                return
            path = self.path
            with rec.lock:
                queue = rec.script.get(path.split("?")[0]) or []
                status, text, headers = queue.pop(0) if queue else (200, "ok", {})
                rec.requests.append(Request(path, {k.lower(): v for k, v in self.headers.items()}, body, time.time(),
                                            status))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json" if text.startswith("{") else "text/plain")
            self.send_header("Content-Length", str(len(text.encode())))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec = HTTPRecorder(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return rec


class SMTPSink:
    """aiosmtpd on a free local port; messages land in ``messages`` as email.message objects."""

    def __init__(self) -> None:
        import email
        import socket

        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        self.envelopes: list[Any] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001, ANN201
                sink.envelopes.append(envelope)
                sink.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
