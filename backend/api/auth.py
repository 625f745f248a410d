"""Bearer-token auth, one dependency for every HTTP route and WebSocket.

With no token configured (loopback only, enforced by ``serve``) everything is open. With a token,
HTTP requests carry ``Authorization: Bearer <token>``; WebSockets may use ``?token=<token>`` instead,
since browsers and some clients cannot set headers on a WebSocket handshake.
"""

from __future__ import annotations

import hmac

from fastapi import Depends
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from .errors import ApiError

bearer_scheme = HTTPBearer(auto_error=False, description="needed when the server was started with a token")


def presented_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if conn.scope["type"] == "websocket":
        return conn.query_params.get("token")
    return None


def token_ok(expected: str | None, given: str | None) -> bool:
    if not expected:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


async def require_token(conn: HTTPConnection) -> None:
    expected = conn.app.state.scenecast.token
    if token_ok(expected, presented_token(conn)):
        return
    raise ApiError(401, "unauthorized", "this server needs a token and the request has none or a wrong one",
                   "send `Authorization: Bearer <token>` with the token the server was started with")


HTTP_AUTH = [Depends(bearer_scheme), Depends(require_token)]
"""Dependencies for HTTP routers: the scheme documents the header in OpenAPI, ``require_token`` checks it."""
