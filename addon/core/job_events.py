"""Following a job: its event stream over the WebSocket (docs/protocol.md, "Events") and ``wait``.

:class:`JobEvents` is the part of :class:`core.client.BackendClient` that reads events; it is a mixin so
the HTTP calls (``status``, ``cancel``) and connection settings stay in the client, and this module holds
only the stream's logic: replayed events, previews followed by their PNG frame, the terminal event,
cancel while waiting, and polling the status when the stream breaks while the backend still answers.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .client_wire import START_BACKEND_FIX, TLS_FIX, http_error
from .errors import (
    AuthError,
    BackendError,
    BackendUnavailable,
    ConnectionClosed,
    HandshakeError,
    WaitTimeout,
    WebSocketError,
)
from .websocket import WebSocket

TERMINAL = ("done", "failed", "cancelled")
#: Seconds between cancel checks while waiting for events.
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class Event:
    """One job event: ``type`` ("queued", "step", "preview", "done", ...), ``data`` the whole JSON
    object (``seq``, ``type`` and the type's fields), ``image`` the PNG bytes of a ``preview``."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = None

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL


class JobEvents:
    """Event reading for a client with ``url``, ``token``, ``timeout``, ``tls``, ``ssl_context()``,
    ``events_url(job_id)``, ``status(job_id)`` and ``cancel(job_id)``."""

    url: str
    token: str | None
    timeout: float
    tls: bool

    def ssl_context(self) -> ssl.SSLContext:
        raise NotImplementedError

    def events_url(self, job_id: str) -> str:
        raise NotImplementedError

    def status(self, job_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def cancel(self, job_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def _connect_events(self, job_id: str) -> WebSocket:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            return WebSocket.connect(
                self.events_url(job_id), headers=headers, timeout=self.timeout,
                ssl_context=self.ssl_context() if self.tls else None,
            )
        except ssl.SSLError as exc:
            raise BackendUnavailable(f"the TLS connection to {self.url} failed: {exc}", TLS_FIX) from exc
        except HandshakeError as exc:
            if not exc.status:  # no HTTP answer at all: timed out or dropped, as if nothing answered
                raise BackendUnavailable(f"the backend at {self.url} did not complete the event stream's"
                                         f" handshake ({exc.message})", START_BACKEND_FIX) from exc
            raise http_error(exc.status, exc.body, f"events of job {job_id}") from exc
        except OSError as exc:  # reset or broken pipe mid-handshake
            raise BackendUnavailable(f"the connection to {self.url} broke ({exc})", START_BACKEND_FIX) from exc
        except WebSocketError as exc:
            raise BackendUnavailable(f"no Scenecast backend answers at {self.url} ({exc.message})", START_BACKEND_FIX) from exc

    def _event_stream(self, job_id: str, poll: float | None) -> Iterator[Event | None]:
        """Events of a job until its terminal one; ``None`` every ``poll`` seconds of silence."""
        sock = self._connect_events(job_id)
        try:
            while True:
                try:
                    message = sock.recv(timeout=poll)
                except TimeoutError:
                    yield None
                    continue
                if message.kind != "text":
                    continue  # a stray binary frame: previews' PNGs are read right after their event
                try:
                    data = json.loads(message.data)
                except ValueError:
                    raise BackendError(
                        f"the event stream of job {job_id} sent something that is not JSON: {message.data[:80]!r}",
                        "update the backend, or report a bug",
                    ) from None
                image = None
                if data.get("type") == "preview":
                    while True:
                        try:
                            follow = sock.recv(timeout=max(self.timeout, poll or 0.0))
                            break
                        except TimeoutError:
                            yield None
                    if not isinstance(follow.data, bytes):
                        raise BackendError("a preview event was not followed by its PNG", "update the backend")
                    image = follow.data
                event = Event(str(data.get("type", "")), data, image)
                yield event
                if event.terminal:
                    return
        except ConnectionClosed as closed:
            if closed.code in (1000, 1001, 1005):
                return  # closed after the terminal event, or the server is shutting down: caller checks
            raise BackendUnavailable(
                f"the event stream of job {job_id} broke ({closed.reason or closed.code})",
                "check the backend's log; the job's state can still be read with status()",
            ) from closed
        except WebSocketError as exc:
            raise BackendUnavailable(f"the event stream of job {job_id} broke: {exc.message}", exc.fix) from exc
        finally:
            sock.close(timeout=0.5)

    def events(self, job_id: str) -> Iterator[Event]:
        """The job's events (past ones replayed first) until its terminal event."""
        for event in self._event_stream(job_id, poll=None):
            if event is not None:
                yield event

    def wait(
        self,
        job_id: str,
        on_event: Callable[[Event], None] | None = None,
        cancel_event: threading.Event | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Follow a job to its end and return its final status (``status`` "done", "failed" or
        "cancelled"; see ``raise_for_job``).

        ``on_event`` is called with every event, in this thread. When ``cancel_event`` is set the job is
        cancelled on the server and its final state awaited. ``timeout`` (seconds): ``WaitTimeout``
        (the job keeps running). If the event stream breaks while the backend still answers, waiting
        goes on by polling the status; if the backend is gone, ``BackendUnavailable``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        cancelled = False

        def check() -> None:
            nonlocal cancelled
            if cancel_event is not None and cancel_event.is_set() and not cancelled:
                try:
                    self.cancel(job_id)
                    cancelled = True
                except AuthError:
                    raise
                except BackendError:
                    cancelled = True  # e.g. the job finished just now: its terminal state is read below
                except BackendUnavailable:
                    pass  # busy or unreachable for a moment: asked again on the next check
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(
                    f"job {job_id} did not finish within {timeout:g} s",
                    "wait longer, or cancel it; it is still running on the backend",
                )

        try:
            for event in self._event_stream(job_id, poll=POLL_INTERVAL):
                if event is not None and on_event is not None:
                    on_event(event)
                check()
                if event is not None and event.terminal:
                    break
        except BackendUnavailable:
            self.status(job_id)  # raises BackendUnavailable itself when the backend is gone
        while True:  # the stream ended (or broke with the backend still there): poll until terminal
            state = self.status(job_id)
            if state.get("status") in TERMINAL:
                return state
            check()
            time.sleep(POLL_INTERVAL)

