"""Who may talk to Backroom's HTTP servers: the rules the dashboard and the ingest API share.

    pytest tests/unit/test_dashboard_api.py tests/unit/test_ingest_api.py

- `check_exposure(host, token, what)`: refuse to serve beyond loopback without a token
  (`BACKROOM_DASHBOARD_TOKEN`; an empty value counts as unset, see `Settings`).
- `request_refusal(...)`: without a token the server is loopback-only, so a `Host` that is not a
  loopback name (or the configured host) means a DNS-rebinding page is talking to it (403); an
  `Origin` that is not the `Host` on a state-changing request is a cross-site request (403).
- `SECURITY_HEADERS`: the Content-Security-Policy and friends sent with every response.

Plain functions over header values: no web framework here.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; script-src 'self'; "
    "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def security_headers(csp: str = CSP) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]


SECURITY_HEADERS = security_headers()


class ExposureError(RuntimeError):
    """Binding beyond loopback without a token."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None, what: str = "the dashboard") -> None:
    if not is_loopback(host) and not token:
        raise ExposureError(
            f"refusing to serve {what} on {host} without a token: "
            "set BACKROOM_DASHBOARD_TOKEN (or bind to 127.0.0.1)"
        )


def allowed_hosts(configured_host: str) -> frozenset[str]:
    return LOOPBACK_NAMES | {configured_host.lower()}


def request_refusal(
    host: str, origin: str | None, *, token: str | None, allowed: frozenset[str], unsafe: bool
) -> str | None:
    """Why a request must get 403 (Host/Origin checks), or None."""
    try:
        host_name = urlsplit(f"//{host}").hostname
    except ValueError:  # "[::1" and other unparseable Host values
        return "unexpected Host header"
    if not token and host_name not in allowed | {None}:
        return "unexpected Host header"
    if origin is not None and unsafe:
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            netloc = ""
        if netloc != host.lower():
            return "cross-origin request refused"
    return None


class SecurityHeaders:
    """ASGI middleware adding `security_headers(csp)` to every HTTP response."""

    def __init__(self, app: Any, csp: str = CSP) -> None:
        self.app = app
        self.headers = security_headers(csp)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
