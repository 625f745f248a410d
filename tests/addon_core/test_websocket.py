"""The WebSocket client against an in-test stdlib server, and against the `websockets` library."""

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from addon.core.errors import ConnectionClosed, HandshakeError, WebSocketError
from addon.core.websocket import Message, WebSocket, accept_key, mask_payload

sys.path.insert(0, str(Path(__file__).parent))
import ws_server as ws  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BACKEND_PYTHON = ROOT / ".venv" / "bin" / "python"


#: The "/slow" route sends half a frame, then waits for the test before it sends the rest.
SLOW_PARTIAL_SENT = threading.Event()
SLOW_REST_MAY_GO = threading.Event()


class Handler(BaseHTTPRequestHandler):
    log_message = lambda *a: None  # noqa: E731 - keep test output clean

    def do_GET(self):
        route = self.path.split("?")[0]
        if route == "/refuse":
            body = json.dumps({"error": {"code": "unauthorized", "message": "no token", "fix": "send one"}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        key = self.headers["Sec-WebSocket-Key"]
        if route == "/badaccept":
            key = "not-the-key"
        self.wfile.write(ws.handshake_response(key))
        self.wfile.flush()
        sock = self.connection
        getattr(self, "route_" + route.strip("/"))(sock)

    def route_badaccept(self, sock):
        try:  # keep the connection until the client, refusing the handshake, hangs up
            ws.read_message(sock)
        except (ConnectionError, OSError):
            pass

    def route_echo(self, sock):
        while True:
            op, payload = ws.read_message(sock)
            if op == 0x8:
                ws.send(sock, 0x8, payload)
                return
            if op in (0x1, 0x2):
                ws.send(sock, op, payload)

    def route_fragmented(self, sock):
        text = "héllo wörld ☃".encode()
        ws.send(sock, 0x1, text[:3], fin=False)  # splits a multi-byte character across frames
        ws.send(sock, 0x9, b"are you there")  # a ping between fragments
        ws.send(sock, 0x0, text[3:9], fin=False)
        ws.send(sock, 0x0, text[9:], fin=True)
        op, payload = ws.read_message(sock)
        assert op == 0xA and payload == b"are you there", (op, payload)
        big = bytes(range(256)) * 300  # 76800 bytes: 64-bit length path
        ws.send(sock, 0x2, big[:70000], fin=False)
        ws.send(sock, 0x0, big[70000:], fin=True)
        ws.send_close(sock, 1000, "bye")
        op, payload = ws.read_message(sock)
        assert op == 0x8 and payload[:2] == b"\x03\xe8"

    def route_headers(self, sock):
        ws.send(sock, 0x1, json.dumps({"auth": self.headers.get("Authorization"), "path": self.path}).encode())
        ws.send_close(sock)
        ws.read_message(sock)

    def route_slow(self, sock):
        ws.read_message(sock)  # waits for the client's "go"
        frame = ws.encode_frame(0x1, b"late but whole")
        sock.sendall(frame[:5])
        SLOW_PARTIAL_SENT.set()
        SLOW_REST_MAY_GO.wait()  # the test says when: after its recv timed out holding the 5 bytes
        sock.sendall(frame[5:])
        ws.send_close(sock)
        ws.read_message(sock)

    def route_drop(self, sock):
        sock.sendall(ws.encode_frame(0x2, b"x" * 100)[:20])
        sock.shutdown(socket.SHUT_RDWR)

    def route_masked(self, sock):
        ws.send(sock, 0x1, b"masked", masked=True)
        try:
            ws.read_message(sock)
        except ConnectionError:
            pass

    def route_abnormal(self, sock):
        ws.send_close(sock, 1011, "server broke")
        ws.read_message(sock)


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_accept_key_matches_rfc_example():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3


def test_mask_is_an_involution():
    data = bytes(range(256)) * 3 + b"xyz"
    assert mask_payload(mask_payload(data, b"\x01\x02\x03\x04"), b"\x01\x02\x03\x04") == data
    assert mask_payload(b"\x00\x00\x00\x00\x00", b"abcd") == b"abcda"


def test_echo_text_binary_large_and_clean_close(server):
    with WebSocket.connect(server + "/echo") as sock:
        sock.send_text("hi ☃")
        assert sock.recv(timeout=5) == Message("text", "hi ☃")
        blob = os.urandom(200_000)
        sock.send_binary(blob)
        assert sock.recv(timeout=5) == Message("binary", blob)
        sock.send_binary(b"x" * 300)  # 16-bit length
        assert sock.recv(timeout=5).data == b"x" * 300
        sock.send_fragmented("text", [b"frag", b"mented"])
        assert sock.recv(timeout=5) == Message("text", "fragmented")
    assert sock.closed is not None and sock.closed.code == 1000
    with pytest.raises(ConnectionClosed):
        sock.recv(timeout=1)


def test_fragmented_messages_with_interleaved_ping_and_server_close(server):
    sock = WebSocket.connect(server + "/fragmented")
    assert sock.recv(timeout=5) == Message("text", "héllo wörld ☃")
    assert sock.recv(timeout=5) == Message("binary", bytes(range(256)) * 300)
    with pytest.raises(ConnectionClosed) as closed:
        sock.recv(timeout=5)
    assert closed.value.code == 1000 and closed.value.reason == "bye"


def test_iteration_ends_on_normal_close(server):
    messages = list(WebSocket.connect(server + "/headers"))
    assert len(messages) == 1


def test_extra_headers_and_query_reach_the_server(server):
    sock = WebSocket.connect(server + "/headers?token=abc", headers={"Authorization": "Bearer s3cret"})
    got = json.loads(sock.recv(timeout=5).data)
    assert got == {"auth": "Bearer s3cret", "path": "/headers?token=abc"}
    sock.close()


def test_timeout_keeps_partial_frames(server):
    SLOW_PARTIAL_SENT.clear()
    SLOW_REST_MAY_GO.clear()
    sock = WebSocket.connect(server + "/slow")
    with pytest.raises(TimeoutError):
        sock.recv(timeout=0.1)  # nothing sent yet
    sock.send_text("go")
    assert SLOW_PARTIAL_SENT.wait(10)
    with pytest.raises(TimeoutError):
        sock.recv(timeout=0.1)  # reads the 5 bytes sent, then times out: the rest is held back
    SLOW_REST_MAY_GO.set()
    assert sock.recv(timeout=5) == Message("text", "late but whole")  # the 5 bytes were kept
    sock.close()


def test_refused_handshake_carries_status_and_body(server):
    with pytest.raises(HandshakeError) as err:
        WebSocket.connect(server + "/refuse")
    assert err.value.status == 401
    assert json.loads(err.value.body)["error"]["code"] == "unauthorized"


def test_wrong_accept_key_is_refused(server):
    with pytest.raises(HandshakeError, match="Accept"):
        WebSocket.connect(server + "/badaccept")


def test_dropped_connection_is_code_1006(server):
    sock = WebSocket.connect(server + "/drop")
    with pytest.raises(ConnectionClosed) as closed:
        sock.recv(timeout=5)
    assert closed.value.code == 1006


def test_masked_server_frame_is_a_protocol_error(server):
    sock = WebSocket.connect(server + "/masked")
    with pytest.raises(WebSocketError, match="masked"):
        sock.recv(timeout=5)
    assert sock.closed is not None and sock.closed.code == 1002


def test_abnormal_close_raises_from_iteration(server):
    with pytest.raises(ConnectionClosed) as closed:
        list(WebSocket.connect(server + "/abnormal"))
    assert closed.value.code == 1011 and "server broke" in str(closed.value)


def test_bad_urls_and_nothing_listening():
    with pytest.raises(WebSocketError, match="wss://"):
        WebSocket.connect("http://example.invalid/x")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(WebSocketError, match="cannot connect"):
        WebSocket.connect(f"ws://127.0.0.1:{port}/x", timeout=2)


INTEROP_SERVER = r"""
import asyncio, sys
from websockets.asyncio.server import serve

async def handler(conn):
    auth = conn.request.headers.get("Authorization")
    await conn.send("auth=" + str(auth))
    await conn.send([b"ab", b"cd", b"ef"])  # one binary message in three fragments
    async for message in conn:
        await conn.send(message)
        if message == "bye":
            await conn.close(1000, "done")

async def main():
    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(30)

asyncio.run(main())
"""


@pytest.mark.skipif(not BACKEND_PYTHON.exists(), reason="backend venv (.venv) not built")
def test_interop_with_the_websockets_library():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen(
        [str(BACKEND_PYTHON), "-c", INTEROP_SERVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read()
            if "No module named 'websockets'" in err:
                pytest.skip("websockets is not installed in .venv")
            raise AssertionError(err)
        sock = WebSocket.connect(f"ws://127.0.0.1:{int(line)}/", headers={"Authorization": "Bearer t0k"})
        assert sock.recv(timeout=5) == Message("text", "auth=Bearer t0k")
        assert sock.recv(timeout=5) == Message("binary", b"abcdef")
        payload = os.urandom(100_000)
        sock.send_binary(payload)
        assert sock.recv(timeout=5) == Message("binary", payload)
        sock.ping(b"p")
        sock.send_text("bye")
        assert sock.recv(timeout=5) == Message("text", "bye")
        with pytest.raises(ConnectionClosed) as closed:
            sock.recv(timeout=5)
        assert closed.value.code == 1000 and closed.value.reason == "done"
    finally:
        proc.kill()
        proc.wait()
