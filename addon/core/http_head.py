"""The HTTP answer to a WebSocket handshake, read off a raw socket: status line, headers, and the body of
a refusal (its JSON error tells the user why). Kept apart from ``core.websocket``'s framing."""

from __future__ import annotations

import socket

from .errors import HandshakeError

#: Longest handshake answer (head, or a refusal's body) read, bytes.
MAX_HEADER = 64 << 10


def read_http_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status code, lower-cased headers and any bytes read past the blank line."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            raise HandshakeError("the server did not answer the WebSocket handshake in time") from None
        if not chunk:
            raise HandshakeError("the server closed the connection during the WebSocket handshake")
        data += chunk
        if len(data) > MAX_HEADER:
            raise HandshakeError("the server's handshake answer is too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise HandshakeError(f"not an HTTP answer: {lines[0][:80]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def read_body(sock: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
    """The body of a refused handshake (for its JSON error), best effort."""
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        length = 0
    body = rest
    try:
        while len(body) < min(length, MAX_HEADER):
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
    except OSError:
        pass
    return body[:length] if length else body
