"""Errors the user sees: each says what went wrong (``message``) and what to do about it (``fix``).

The UI shows both; scripts get them in ``str(error)``. Every error the add-on raises on purpose is a
``ScenecastError`` (``blender/``'s errors too, which also keep their ``ValueError``/``RuntimeError``
base so older ``except`` clauses still catch them); anything else is a bug. A class names a
``default_fix`` when its raisers may have nothing more specific to say, so no error reaches the user
without a next step.
"""

from __future__ import annotations


class ScenecastError(Exception):
    """Base class: ``message`` says what is wrong, ``fix`` what to do next (``default_fix`` when the
    raiser gives none; empty only for errors whose message already ends with the fix)."""

    default_fix = ""

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix or self.default_fix
        super().__init__(f"{message} — {self.fix}" if self.fix else message)


class BackendUnavailable(ScenecastError):
    """Nothing answers at the backend URL (not started, wrong port, crashed)."""

    default_fix = (
        "start the backend (python -m backend serve, or the Start Backend button) and check the backend URL"
        " in Preferences › Add-ons › Scenecast (default http://127.0.0.1:7437)"
    )


class ProtocolMismatch(ScenecastError):
    """The backend speaks another protocol version than this add-on."""

    default_fix = "update whichever of the add-on and the backend is older, so both speak the same protocol"


class BackendError(ScenecastError):
    """The backend answered with an error (4xx/5xx): ``status`` and its ``code``."""

    default_fix = "look at the backend's log for details"

    def __init__(self, message: str, fix: str | None = None, *, status: int = 0, code: str = "") -> None:
        super().__init__(message, fix)
        self.status = status
        self.code = code


class AuthError(BackendError):
    """401/403: the token is missing or wrong."""

    default_fix = (
        "set the token in Preferences › Add-ons › Scenecast to the one the backend was started with"
        " (--token or SCENECAST_TOKEN)"
    )


class JobFailed(ScenecastError):
    """A job did not produce results. ``status``: "failed" (on the server, or the server vanished
    mid-job) or "cancelled" (then it is a :class:`JobCancelled`); ``job_id`` when it had been
    submitted; ``code`` the backend's error code, if it gave one."""

    default_fix = "look at the backend's log for details, then run the job again"

    def __init__(
        self, message: str, fix: str | None = None, status: str = "failed", job_id: str | None = None,
        *, code: str = "",
    ) -> None:
        super().__init__(message, fix)
        self.status = status
        self.job_id = job_id
        self.code = code


class JobCancelled(JobFailed):
    """The job was cancelled (by the user, or on the server): a :class:`JobFailed` whose ``status`` is
    "cancelled", so one ``except JobFailed`` sees every job that gave no result."""

    default_fix = "run it again when you want its result"

    def __init__(self, message: str, fix: str | None = None, job_id: str | None = None) -> None:
        super().__init__(message, fix, status="cancelled", job_id=job_id)


class WebSocketError(ScenecastError):
    """The event stream broke: bad handshake, protocol violation or lost connection."""

    default_fix = "check that the backend is still running (its log says why it stopped) and reachable at its URL"


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

    default_fix = "wait longer (a larger timeout), or cancel the job; it is still running on the backend"


class BackendProcessError(ScenecastError):
    """A local backend could not be found or started; ``log_path`` is its log, when it got one."""

    default_fix = (
        "set Preferences › Add-ons › Scenecast › Backend Python to the python of the backend's virtual"
        " environment, or start the backend yourself (python -m backend serve)"
    )

    def __init__(self, message: str, fix: str | None = None, log_path: str | None = None) -> None:
        super().__init__(message, fix)
        self.log_path = log_path
