"""A small client for the RabbitMQ management HTTP API.

Used where AMQP cannot answer: vhost set-up in tests, a queue's current
arguments for drift reports, definitions import, message counts for
``dlq list`` and queue-depth metrics, closing connections in fault tests.
"""
from __future__ import annotations

import urllib.parse
from typing import Any

import requests

from harewatch.errors import BrokerUnreachable


class Management:
    """Thin wrapper over ``/api``; ``url`` may carry credentials (``http://user:pw@host:15672``)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.auth = (urllib.parse.unquote(parts.username or "guest"),
                     urllib.parse.unquote(parts.password or "guest"))
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc += f":{parts.port}"
        self.base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/api"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = self.auth

    @staticmethod
    def q(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        try:
            resp = self.session.request(method, self.base + path, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise BrokerUnreachable(f"RabbitMQ management API at {self.base} unreachable: {exc}") from None
        return resp

    def get(self, path: str) -> Any:
        resp = self.request("GET", path)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    def available(self) -> bool:
        try:
            return self.request("GET", "/overview").status_code == 200
        except BrokerUnreachable:
            return False

    # vhosts -------------------------------------------------------------
    def create_vhost(self, vhost: str, user: str | None = None, description: str = "") -> None:
        body = {"description": description} if description else {}
        self.request("PUT", f"/vhosts/{self.q(vhost)}", json=body).raise_for_status()
        perm = {"configure": ".*", "write": ".*", "read": ".*"}
        self.request("PUT", f"/permissions/{self.q(vhost)}/{self.q(user or self.auth[0])}",
                     json=perm).raise_for_status()

    def delete_vhost(self, vhost: str) -> None:
        resp = self.request("DELETE", f"/vhosts/{self.q(vhost)}")
        if resp.status_code not in (204, 404):
            resp.raise_for_status()

    # queues, exchanges, bindings ------------------------------------------
    def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        return self.get(f"/queues/{self.q(vhost)}/{self.q(name)}")

    def queues(self, vhost: str) -> list[dict[str, Any]]:
        return self.get(f"/queues/{self.q(vhost)}") or []

    def exchange(self, vhost: str, name: str) -> dict[str, Any] | None:
        return self.get(f"/exchanges/{self.q(vhost)}/{self.q(name)}")

    def exchanges(self, vhost: str) -> list[dict[str, Any]]:
        return self.get(f"/exchanges/{self.q(vhost)}") or []

    def bindings(self, vhost: str) -> list[dict[str, Any]]:
        return self.get(f"/bindings/{self.q(vhost)}") or []

    def import_definitions(self, vhost: str, definitions: dict[str, Any]) -> None:
        resp = self.request("POST", f"/definitions/{self.q(vhost)}", json=definitions)
        if resp.status_code >= 300:
            raise RuntimeError(f"definitions import failed ({resp.status_code}): {resp.text}")

    # connections --------------------------------------------------------
    def connections(self, vhost: str | None = None) -> list[dict[str, Any]]:
        path = f"/vhosts/{self.q(vhost)}/connections" if vhost else "/connections"
        return self.get(path) or []

    def close_connection(self, name: str, reason: str = "closed by harewatch") -> None:
        resp = self.request("DELETE", f"/connections/{self.q(name)}", headers={"X-Reason": reason})
        if resp.status_code not in (204, 404):
            resp.raise_for_status()
