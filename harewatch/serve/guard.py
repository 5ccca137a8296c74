"""Who may change things through ``harewatch serve``: writes (silences, replay, purge) need a bearer token
or basic auth when configured, and are refused outright when serving beyond loopback without either, or
in read-only mode. Forms carry a CSRF token (double submit: a cookie and a field that must agree, plus a
same-origin check), so another site cannot make a logged-in browser post."""
from __future__ import annotations

import base64
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Mapping

CSRF_COOKIE = "harewatch_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Guard:
    """The write policy of one server."""

    host: str
    token: str | None = None
    basic: tuple[str, str] | None = None     # (user, password)
    read_only: bool = False

    @classmethod
    def from_options(cls, host: str, token: str | None, basic_auth: str | None, read_only: bool) -> "Guard":
        """From the command line; ValueError names what is wrong."""
        basic = None
        if basic_auth:
            user, sep, pw = basic_auth.partition(":")
            if not sep or not user or not pw:
                raise ValueError("--basic-auth is user:password")
            basic = (user, pw)
        if token is not None and len(token) < 16:
            raise ValueError("--token must be at least 16 characters")
        return cls(host, token or None, basic, read_only)

    @property
    def auth_configured(self) -> bool:
        return self.token is not None or self.basic is not None

    def write_refusal(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """None if a request with these headers may write, else (HTTP status, why)."""
        if self.read_only:
            return 403, "harewatch serve runs read-only (--read-only)"
        if not self.auth_configured:
            if is_loopback(self.host):
                return None
            return 403, ("writes are off: harewatch serve listens beyond loopback without --token or "
                         "--basic-auth")
        if self.authorized(headers.get("Authorization", "")):
            return None
        return 401, "authentication required (a bearer token or basic auth)"

    def authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.token is not None:
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        if scheme.lower() == "basic" and self.basic is not None:
            try:
                user, _, pw = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user.encode(), self.basic[0].encode()) & \
                hmac.compare_digest(pw.encode(), self.basic[1].encode())
        return False

    @property
    def challenge(self) -> str:
        return 'Basic realm="harewatch", charset="UTF-8"' if self.basic is not None else "Bearer"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, submitted: str | None, origin: str | None, host_url: str) -> bool:
    """The form's token equals the cookie's, and the request comes from this server's own pages."""
    if not cookie or not submitted or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return False
    if origin is None:          # not sent by every browser on same-origin posts; the token still had to match
        return True
    return origin.rstrip("/") == host_url.rstrip("/")
