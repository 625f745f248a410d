"""A minimal RFC 6455 WebSocket client on the standard library socket and ``ssl`` (ws:// and wss://).

Blender's Python has no WebSocket library and nothing may be pip-installed into it, so the event
stream of a job (protocol 1: ``/v1/jobs/{id}/events``) is read with this. It does what a client
must: the handshake with a checked ``Sec-WebSocket-Accept``, masked frames, fragmented messages,
ping/pong, close. Frames are parsed from an internal buffer only when complete, so a ``recv`` that
times out can be retried without losing bytes. ``send*`` is safe to call from another thread while
one thread is in ``recv``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

from .errors import ConnectionClosed, HandshakeError, WebSocketError
from .http_head import read_body, read_http_head

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Largest message accepted (a 2048² RGBA preview PNG is at most ~17 MB).
MAX_MESSAGE = 64 << 20


@dataclass(frozen=True)
class Message:
    """One complete data message: ``kind`` is "text" (``data`` str) or "binary" (``data`` bytes)."""

    kind: str
    data: str | bytes


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer for ``key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def mask_payload(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the repeating 4-byte ``mask`` (fast: one big-integer XOR)."""
    n = len(data)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One frame; ``mask`` (4 bytes) for client-to-server frames, None for server frames."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += struct.pack(">H", n)
    else:
        head.append(bit | 127)
        head += struct.pack(">Q", n)
    if mask is None:
        return bytes(head) + payload
    return bytes(head) + mask + mask_payload(payload, mask)


class WebSocket:
    """A connected client WebSocket. Use ``WebSocket.connect(url, headers)``."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self._sock = sock
        self._buf = bytearray(buffered)
        self._send_lock = threading.Lock()
        self._fragments: list[bytes] = []
        self._fragment_op = 0
        self._fragment_size = 0
        self._close_sent = False
        self.closed: ConnectionClosed | None = None

    # --------------------------------------------------------------------------------- connect

    @classmethod
    def connect(
        cls,
        url: str,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> "WebSocket":
        """Open ``ws://`` or ``wss://host:port/path?query``, sending ``headers`` (e.g. Authorization) with
        the upgrade. ``wss``: TLS with ``ssl_context`` (default: the system's CAs, hostname checked);
        a certificate that does not verify raises ``ssl.SSLError`` (an ``OSError``)."""
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise WebSocketError(f"unsupported WebSocket URL {url!r}", "use a ws:// or wss:// URL")
        tls = parts.scheme == "wss"
        host = parts.hostname or "localhost"
        default_port = 443 if tls else 80
        port = parts.port or default_port
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise WebSocketError(f"cannot connect to {host}:{port}: {exc}", "check that the backend is running") from exc
        if tls:
            context = ssl_context or ssl.create_default_context()
            try:
                sock = context.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = base64.b64encode(os.urandom(16)).decode("ascii")
            host_header = host if port == default_port else f"{host}:{port}"
            if ":" in host and not host.startswith("["):  # IPv6 literal
                host_header = f"[{host}]:{port}"
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: {host_header}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
            ]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            status, response_headers, rest = read_http_head(sock)
            if status != 101:
                body = read_body(sock, response_headers, rest)
                raise HandshakeError(
                    f"the server refused the WebSocket upgrade with HTTP {status}",
                    "check the URL, the job id and the token",
                    status=status,
                    body=body,
                )
            if response_headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in response_headers.get(
                "connection", ""
            ).lower().replace(" ", "").split(","):
                raise HandshakeError("the server answered 101 without upgrading to WebSocket", status=status)
            if response_headers.get("sec-websocket-accept") != accept_key(key):
                raise HandshakeError(
                    "the server's Sec-WebSocket-Accept does not match the key sent",
                    "something between the add-on and the backend (a proxy?) alters the handshake",
                    status=status,
                )
        except BaseException:
            sock.close()
            raise
        return cls(sock, rest)

    # ------------------------------------------------------------------------------------ send

    def _send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        frame = encode_frame(opcode, payload, fin=fin, mask=os.urandom(4))
        with self._send_lock:
            if self._close_sent:
                raise ConnectionClosed(self.closed.code if self.closed else 1006, "the socket is closing")
            if opcode == OP_CLOSE:
                self._close_sent = True
            try:
                self._sock.sendall(frame)
            except OSError as exc:
                raise WebSocketError(f"sending on the WebSocket failed: {exc}") from exc

    def send_text(self, text: str) -> None:
        self._send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self._send_frame(OP_BINARY, bytes(data))

    def send_fragmented(self, kind: str, chunks: list[bytes]) -> None:
        """One message sent as several frames (chunks are raw bytes; text must be UTF-8)."""
        op = OP_TEXT if kind == "text" else OP_BINARY
        for i, chunk in enumerate(chunks):
            self._send_frame(op if i == 0 else OP_CONT, chunk, fin=i == len(chunks) - 1)

    def ping(self, data: bytes = b"") -> None:
        self._send_frame(OP_PING, data)

    # ------------------------------------------------------------------------------------ recv

    def recv(self, timeout: float | None = None) -> Message:
        """The next data message. Answers pings on the way.

        Raises ``TimeoutError`` after ``timeout`` seconds (None: wait forever; the socket stays usable),
        ``ConnectionClosed`` when the server closed the connection (its close frame is answered).
        """
        if self.closed is not None:
            raise self.closed
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            frame = self._parse_frame()
            if frame is None:
                self._fill(deadline)
                continue
            fin, opcode, payload = frame
            message = self._handle(fin, opcode, payload)
            if message is not None:
                return message

    def __iter__(self) -> "WebSocket":
        return self

    def __next__(self) -> Message:
        try:
            return self.recv()
        except ConnectionClosed as closed:
            if closed.code in (1000, 1001, 1005):
                raise StopIteration from None
            raise

    def _fill(self, deadline: float | None) -> None:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no WebSocket message within the timeout")
            self._sock.settimeout(left)
        else:
            self._sock.settimeout(None)
        try:
            data = self._sock.recv(1 << 16)
        except socket.timeout:
            raise TimeoutError("no WebSocket message within the timeout") from None
        except OSError as exc:
            self._abort(f"connection lost: {exc}")
        if not data:
            self._abort("the server closed the connection without a close frame")
        self._buf += data

    def _parse_frame(self) -> tuple[bool, int, bytes] | None:
        """A complete frame from the buffer (consumed), or None when more bytes are needed."""
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if b0 & 0x70:
            self._fail(1002, "reserved bits set (no extension was negotiated)")
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None
            (n,) = struct.unpack_from(">H", buf, 2)
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            (n,) = struct.unpack_from(">Q", buf, 2)
            pos = 10
        if n > MAX_MESSAGE:
            self._fail(1009, f"frame of {n} bytes is larger than the {MAX_MESSAGE}-byte limit")
        if masked:
            self._fail(1002, "the server sent a masked frame")
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos : pos + n])
        del buf[: pos + n]
        return fin, opcode, payload

    def _handle(self, fin: bool, opcode: int, payload: bytes) -> Message | None:
        if opcode >= 0x8:  # control frame
            if not fin or len(payload) > 125:
                self._fail(1002, "control frames must be unfragmented and at most 125 bytes")
            if opcode == OP_PING:
                try:
                    self._send_frame(OP_PONG, payload)
                except ConnectionClosed:
                    pass
            elif opcode == OP_CLOSE:
                self._on_close(payload)
            elif opcode != OP_PONG:
                self._fail(1002, f"unknown control opcode {opcode}")
            return None
        if opcode == OP_CONT:
            if not self._fragments:
                self._fail(1002, "continuation frame without a message to continue")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments:
                self._fail(1002, "new message started before the previous one was finished")
            self._fragment_op = opcode
        else:
            self._fail(1002, f"unknown data opcode {opcode}")
        self._fragments.append(payload)
        self._fragment_size += len(payload)
        if self._fragment_size > MAX_MESSAGE:
            self._fail(1009, "message too large")
        if not fin:
            return None
        data = b"".join(self._fragments)
        self._fragments, self._fragment_size = [], 0
        if self._fragment_op == OP_TEXT:
            try:
                return Message("text", data.decode("utf-8"))
            except UnicodeDecodeError:
                self._fail(1007, "text message is not valid UTF-8")
        return Message("binary", data)

    def _on_close(self, payload: bytes) -> NoReturn:
        if len(payload) == 1:
            self._fail(1002, "close frame with a one-byte payload")
        code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
        reason = payload[2:].decode("utf-8", "replace")
        if not self._close_sent:
            try:
                self._send_frame(OP_CLOSE, payload[:2])
            except (ConnectionClosed, WebSocketError):
                pass
        self.closed = ConnectionClosed(code, reason)
        self._shutdown()
        raise self.closed

    def _fail(self, code: int, why: str) -> NoReturn:
        """Protocol violation by the server: close with ``code`` and raise."""
        try:
            self._send_frame(OP_CLOSE, struct.pack(">H", code) + why.encode("utf-8")[:120])
        except (ConnectionClosed, WebSocketError):
            pass
        self.closed = ConnectionClosed(code, why)
        self._shutdown()
        raise WebSocketError(f"WebSocket protocol error: {why}", "update the backend or report a bug")

    def _abort(self, why: str) -> NoReturn:
        self.closed = ConnectionClosed(1006, why)
        self._shutdown()
        raise self.closed

    # ----------------------------------------------------------------------------------- close

    def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Clean close: send a close frame, wait up to ``timeout`` for the server's, then hang up."""
        if self.closed is not None:
            self._shutdown()
            return
        try:
            self._send_frame(OP_CLOSE, struct.pack(">H", code) + reason.encode("utf-8")[:123])
            deadline = time.monotonic() + timeout
            while self.closed is None:
                self.recv(timeout=max(0.0, deadline - time.monotonic()))
        except (ConnectionClosed, WebSocketError, TimeoutError, OSError):
            pass
        if self.closed is None:
            self.closed = ConnectionClosed(code, reason)
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def __enter__(self) -> "WebSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
