"""Server side of RFC 6455 for test doubles: handshake and frames on a plain socket (stdlib only)."""

from __future__ import annotations

import os
import socket
import struct

from addon.core.websocket import accept_key, encode_frame, mask_payload


def handshake_response(key: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode("latin-1")


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client hung up")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[bool, int, bytes]:
    """One client frame (must be masked), unmasked: (fin, opcode, payload)."""
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack(">H", recv_exact(sock, 2))
    elif n == 127:
        (n,) = struct.unpack(">Q", recv_exact(sock, 8))
    assert b1 & 0x80, "client frames must be masked"
    mask = recv_exact(sock, 4)
    return bool(b0 & 0x80), b0 & 0x0F, mask_payload(recv_exact(sock, n), mask)


def read_message(sock: socket.socket) -> tuple[int, bytes]:
    """One whole data message (answering nothing; pongs and pings are returned as they come)."""
    parts: list[bytes] = []
    first_op = None
    while True:
        fin, op, payload = read_frame(sock)
        if op >= 0x8:
            return op, payload
        first_op = op if first_op is None else first_op
        parts.append(payload)
        if fin:
            return first_op, b"".join(parts)


def send(sock: socket.socket, opcode: int, payload: bytes, fin: bool = True, masked: bool = False) -> None:
    sock.sendall(encode_frame(opcode, payload, fin=fin, mask=os.urandom(4) if masked else None))


def send_close(sock: socket.socket, code: int = 1000, reason: str = "") -> None:
    send(sock, 0x8, struct.pack(">H", code) + reason.encode())
