"""A token-less server refuses browsers: foreign Origin (CSRF) and foreign Host (DNS rebinding)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from backend.api.origin import LoopbackOnlyMiddleware


async def ok(_request):
    return PlainTextResponse("ok")


async def ws(socket):
    await socket.accept()
    await socket.send_text("hello")
    await socket.close()


def client(token: str | None) -> TestClient:
    app = Starlette(routes=[Route("/v1/jobs", ok, methods=["GET", "POST"]), WebSocketRoute("/ws", ws)])
    app.add_middleware(LoopbackOnlyMiddleware, token_of=lambda: token)
    return TestClient(app, base_url="http://127.0.0.1:7437")


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://127.0.0.1:7437"}, {"Host": "localhost:7437"},
                                     {"Host": "[::1]:7437", "Origin": "http://localhost:3000"}])
def test_local_callers_get_through(headers):
    assert client(None).post("/v1/jobs", headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Host": "rebind.evil.example:7437"}])
def test_web_pages_are_refused_with_the_error_shape(headers):
    response = client(None).post("/v1/jobs", headers=headers)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden_origin" and error["fix"]


def test_websocket_from_a_web_page_is_refused():
    with pytest.raises(WebSocketDisconnect):
        with client(None).websocket_connect("/ws", headers={"Host": "127.0.0.1:7437", "Origin": "https://evil.example"}) as socket:
            socket.receive_text()
    with client(None).websocket_connect("/ws", headers={"Host": "127.0.0.1:7437"}) as socket:
        assert socket.receive_text() == "hello"


def test_with_a_token_the_token_decides_not_the_origin():
    assert client("secret").post("/v1/jobs", headers={"Origin": "https://studio.example"}).status_code == 200
