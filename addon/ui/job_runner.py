"""One backend job running in a worker thread, observed from Blender's main thread.

The worker runs ``core.remote_job.run_job`` (network, waiting, writing result files) and never touches
bpy: the request it gets was built on the main thread, and everything it learns goes into a queue
that the job driver (``job_operator``) drains on its timer, on the main thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
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
    """``runner`` is ``run_job`` unless a test hands in its own (e.g. one that waits on an Event)."""

    request: JobRequest
    cancel: threading.Event = field(default_factory=threading.Event)
    messages: queue.Queue = field(default_factory=queue.Queue)  # type: ignore[type-arg]
    thread: threading.Thread | None = None
    runner: Callable[..., JobOutcome] = run_job

    def start(self) -> RunningJob:
        self.thread = threading.Thread(target=self._work, name="scenecast-job", daemon=True)
        self.thread.start()
        return self

    def _work(self) -> None:
        try:
            outcome = self.runner(
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


def start(request: JobRequest, runner: Callable[..., JobOutcome] = run_job) -> RunningJob:
    """``request`` running in a new worker thread."""
    return RunningJob(request, runner=runner).start()
