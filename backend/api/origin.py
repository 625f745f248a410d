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

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _host_name(value: str) -> str:
    """``127.0.0.1:7437`` / ``[::1]:7437`` / ``localhost`` -> the name without port or brackets."""
    return (urlsplit("//" + value).hostname or "").lower()


def is_loopback_name(name: str) -> bool:
    return name in LOOPBACK_NAMES or name.startswith("127.")


def refusal(headers: dict[str, str]) -> str | None:
    """Why a token-less server refuses these request headers, or None."""
    host = headers.get("host", "")
    if host and not is_loopback_name(_host_name(host)):
        return f"Host {host!r} is not a loopback name"
    origin = headers.get("origin")
    if origin and origin != "null" and not is_loopback_name(urlsplit(origin).hostname or ""):
        return f"requests from web pages ({origin}) are not accepted"
    if origin == "null":
        return "requests from sandboxed web pages are not accepted"
    return None


class LoopbackOnlyMiddleware:
    """ASGI middleware: the checks above, for HTTP and WebSocket, when ``token_of()`` gives no token."""

    def __init__(self, app: Callable[..., Awaitable[None]], token_of: Callable[[], str | None]) -> None:
        self.app = app
        self.token_of = token_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.token_of():
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            why = refusal(headers)
            if why is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": why[:120]})
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
