"""One generation job running in a worker thread, observed from Blender's main thread.

The worker runs ``core.remote_job.run_job`` (network, waiting, writing result files) and never touches
bpy; everything it learns goes into a queue that the modal operator drains on its timer. There is at
most one active job per Blender session: the Cancel button and Esc reach it through :func:`active`.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from ..core.remote_job import JobOutcome, JobRequest, run_job


@dataclass
class Message:
    kind: str  # "event" | "status" | "done" | "error"
    event: Any = None
    text: str = ""
    outcome: JobOutcome | None = None
    error: BaseException | None = None


@dataclass
class RunningJob:
    request: JobRequest
    cancel: threading.Event = field(default_factory=threading.Event)
    messages: queue.Queue = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._work, name="scenecast-job", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            outcome = run_job(
                self.request,
                on_event=lambda e: self.messages.put(Message("event", event=e)),
                cancel=self.cancel,
                on_status=lambda text: self.messages.put(Message("status", text=text)),
            )
        except BaseException as exc:  # reported on the main thread, never lost in the worker
            self.messages.put(Message("error", error=exc))
        else:
            self.messages.put(Message("done", outcome=outcome))

    def drain(self) -> list[Message]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


_active: RunningJob | None = None


def active() -> RunningJob | None:
    """The job the UI is running now, if any."""
    return _active if _active is not None and (_active.alive() or not _active.messages.empty()) else None


def start(request: JobRequest) -> RunningJob:
    global _active
    if active() is not None:
        raise RuntimeError("a Scenecast job is already running: wait for it or cancel it first")
    _active = RunningJob(request)
    _active.start()
    return _active


def finish(job: RunningJob) -> None:
    global _active
    if _active is job:
        _active = None


def cancel_active() -> bool:
    """Ask the running job to cancel (on the server too); False when none runs."""
    job = active()
    if job is None:
        return False
    job.cancel.set()
    return True
