"""Keep web pages out of a token-less local server.

A server without a token trusts whoever can reach loopback, and a browser tab is one such caller: a
cross-site form POST needs no CORS preflight, a WebSocket is not covered by CORS at all, and DNS
rebinding lets a page read answers from 127.0.0.1 under its own host name. So, without a token,
requests must name a loopback ``Host``, and a present ``Origin`` must be loopback too. With a token
the token does this job (a page cannot know it), so nothing is checked here.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from ..loopback import is_loopback_name

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _split(value: str, scheme: str) -> tuple[str, int | None] | None:
    """``127.0.0.1:7437`` / ``[::1]:7437`` / ``localhost`` -> (name, port); None when unparsable."""
    try:
        parts = urlsplit(f"{scheme}://{value}")
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname or ""), port if port is not None else DEFAULT_PORTS.get(scheme)


def refusal(headers: dict[str, str], server_port: int | None = None, scheme: str = "http") -> str | None:
    """Why a token-less server refuses these request headers, or None.

    ``Host`` must be a loopback name with ``server_port`` (when known); ``Origin``, when present, must
    be a loopback origin (any port: a page of another local server is the user's own).
    """
    host = headers.get("host", "")
    if host:
        split = _split(host, scheme)
        if split is None or not is_loopback_name(split[0]):
            return f"Host {host!r} is not a loopback name"
        if server_port is not None and split[1] != server_port:
            return f"Host {host!r} names another port than this server's ({server_port})"
    origin = headers.get("origin")
    if origin == "null":
        return "requests from sandboxed web pages are not accepted"
    if origin:
        try:
            origin_host = urlsplit(origin).hostname or ""
        except ValueError:
            origin_host = ""
        if not is_loopback_name(origin_host):
            return f"requests from web pages ({origin}) are not accepted"
    return None


class LoopbackOnlyMiddleware:
    """ASGI middleware: the checks above, for HTTP and WebSocket, when ``token_of()`` gives no token."""

    def __init__(self, app: Callable[..., Awaitable[None]], token_of: Callable[[], str | None]) -> None:
        self.app = app
        self.token_of = token_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.token_of():
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            server = scope.get("server")
            scheme = {"https": "https", "wss": "https"}.get(scope.get("scheme", "http"), "http")
            why = refusal(headers, server[1] if server and server[1] else None, scheme)
            if why is not None:
                if scope["type"] == "websocket":
                    await close_policy_violation(receive, send, why)
                    return
                body = json.dumps({"error": {"code": "forbidden_origin", "message": why,
                                             "fix": "call the backend from the add-on, a script or curl on this machine;"
                                                    " for other machines start it with a token"}}).encode()
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


async def close_policy_violation(receive: Receive, send: Send, reason: str) -> None:
    """Refuse a WebSocket the way docs/protocol.md says and clients can read: accept the handshake, then
    close with 1008 and the reason (a close before accepting would reach the client as a bare HTTP 403).
    The reason is cut to the 123 bytes a close frame allows."""
    message = await receive()
    if message.get("type") != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1008, "reason": reason.encode()[:123].decode(errors="ignore")})
