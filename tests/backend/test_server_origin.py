"""A token-less server refuses browsers: foreign Origin (CSRF) and foreign Host (DNS rebinding)."""

from __future__ import annotations

import json
import urllib.error

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from backend.api.origin import LoopbackOnlyMiddleware


WS_URL = "ws://127.0.0.1:7437/ws"


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
                                     {"Host": "127.0.0.2:7437"}, {"Host": "LOCALHOST:7437"},
                                     {"Host": "[::1]:7437", "Origin": "http://localhost:3000"}])
def test_local_callers_get_through(headers):
    """Exact loopback addresses (127.0.0.0/8, ::1) and ``localhost``, with the server's port."""
    assert client(None).post("/v1/jobs", headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Host": "rebind.evil.example:7437"},
                                     # DNS rebinding with names that merely start like a loopback address
                                     {"Host": "127.0.0.1.evil.example:7437"}, {"Host": "127.evil.example:7437"},
                                     {"Origin": "http://127.0.0.1.evil.example:7437"},
                                     {"Host": "localhost.evil.example:7437"},
                                     # a loopback name, but not this server's port
                                     {"Host": "127.0.0.1:8080"}, {"Host": "localhost"}])
def test_web_pages_are_refused_with_the_error_shape(headers):
    response = client(None).post("/v1/jobs", headers=headers)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden_origin" and error["fix"]


def test_websocket_from_a_web_page_is_refused():
    with pytest.raises(WebSocketDisconnect):
        with client(None).websocket_connect(WS_URL, headers={"Host": "127.0.0.1:7437", "Origin": "https://evil.example"}) as socket:
            socket.receive_text()
    with client(None).websocket_connect(WS_URL, headers={"Host": "127.0.0.1:7437"}) as socket:
        assert socket.receive_text() == "hello"


def test_with_a_token_the_token_decides_not_the_origin():
    assert client("secret").post("/v1/jobs", headers={"Origin": "https://studio.example"}).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1.evil.example:7437", "127.1.2.3.nip.io:7437", "localhost:9999"])
def test_websocket_with_a_rebound_host_is_refused(host):
    with pytest.raises(WebSocketDisconnect) as info:
        with client(None).websocket_connect(WS_URL, headers={"Host": host}) as socket:
            socket.receive_text()
    assert info.value.code == 1008


# -- the real server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def open_server():
    from _server import start_server

    server = start_server(token=None)
    yield server
    server.stop()


def raw_ws_handshake(port: int, host: str, path: str = "/v1/jobs/nope/events") -> tuple[bytes, bytes]:
    """A WebSocket handshake with a chosen Host header: (the HTTP answer's head, what came after it)."""
    import base64
    import os
    import socket

    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, rest = data.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 101"):
            while len(rest) < 4:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                rest += chunk
        return head, rest


def test_the_real_server_refuses_a_rebound_host_over_http_and_websocket(open_server):
    import urllib.request

    from _server import tiny_spec

    port = open_server.port
    for host in (f"127.0.0.1.evil.example:{port}", f"127.evil.example:{port}"):
        req = urllib.request.Request(f"{open_server.url}/v1/jobs", data=json.dumps(tiny_spec()).encode(),
                                     method="POST", headers={"Host": host, "Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 403 and json.loads(info.value.read())["error"]["code"] == "forbidden_origin"
        head, frame = raw_ws_handshake(port, host)
        # accepted, then closed with 1008 and a reason a client can show (docs/protocol.md)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert frame[0] == 0x88 and int.from_bytes(frame[2:4], "big") == 1008, frame
        assert b"loopback" in frame[4:]
    head, _ = raw_ws_handshake(port, f"127.0.0.1:{port}")
    assert b" 404 " in head.split(b"\r\n")[0]  # a loopback Host gets through to the route: unknown job
