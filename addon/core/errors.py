"""Errors the user sees: each says what went wrong (``message``) and what to do about it (``fix``).

The UI shows both; scripts get them in ``str(error)``. Every error raised by ``core`` on purpose is a
``ScenecastError``; anything else is a bug.
"""

from __future__ import annotations


class ScenecastError(Exception):
    """Base class: ``message`` says what is wrong, ``fix`` what to do next (may be empty)."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix or ""
        super().__init__(f"{message} — {self.fix}" if self.fix else message)


class BackendUnavailable(ScenecastError):
    """Nothing answers at the backend URL (not started, wrong port, crashed)."""


class ProtocolMismatch(ScenecastError):
    """The backend speaks another protocol version than this add-on."""


class BackendError(ScenecastError):
    """The backend answered with an error (4xx/5xx): ``status`` and its ``code``."""

    def __init__(self, message: str, fix: str | None = None, *, status: int = 0, code: str = "") -> None:
        super().__init__(message, fix)
        self.status = status
        self.code = code


class AuthError(BackendError):
    """401/403: the token is missing or wrong."""


class JobFailed(ScenecastError):
    """The job ended as failed on the backend; ``code`` is the backend's error code."""

    def __init__(self, message: str, fix: str | None = None, *, code: str = "") -> None:
        super().__init__(message, fix)
        self.code = code


class JobCancelled(ScenecastError):
    """The job was cancelled (by the user, or on the server)."""


class WebSocketError(ScenecastError):
    """The event stream broke: bad handshake, protocol violation or lost connection."""


class HandshakeError(WebSocketError):
    """The server refused the WebSocket upgrade; ``status`` and ``body`` hold its HTTP answer."""

    def __init__(self, message: str, fix: str | None = None, *, status: int = 0, body: bytes = b"") -> None:
        super().__init__(message, fix)
        self.status = status
        self.body = body


class ConnectionClosed(WebSocketError):
    """The WebSocket is closed; ``code`` and ``reason`` from the close frame (1006: no close frame)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class WaitTimeout(ScenecastError):
    """Waiting for a job took longer than the caller allowed; the job itself keeps running."""
