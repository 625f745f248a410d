"""The server's view of one job: its spec, inputs, state and event log."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..spec import JobSpec
from .events import EventLog
from .images import InputImage

STATES = ("queued", "running", "done", "failed", "cancelled")


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(eq=False)
class Job:
    """State changes happen on the worker thread (or under the queue's lock for queued jobs).

    Compared by identity (``eq=False``): two jobs with the same spec and inputs are still two jobs, and
    field equality would compare their numpy images, which raises instead of answering.
    """

    spec: JobSpec
    images: dict[str, np.ndarray]  # key -> H x W x 3 uint8, decoded when the job starts; dropped when it ends
    input_hashes: dict[str, str]  # key -> sha256 hex of the bytes received (PNG or raw), filled when written
    id: str = field(default_factory=new_job_id)
    created: float = field(default_factory=time.time)
    status: str = "queued"
    stage: int | None = None
    step: int | None = None
    steps: int | None = None
    error: dict[str, Any] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)  # index, path, width, height, sha256
    record: dict[str, Any] | None = None
    started: float | None = None
    finished_at: float | None = None
    events: EventLog = field(default_factory=EventLog)
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    inputs: dict[str, InputImage] = field(default_factory=dict)  # as received, undecoded while queued
    blobs: dict[str, bytes | bytearray] = field(default_factory=dict)  # non-image parts (correspondences), raw
    outputs: list[np.ndarray] | None = None  # result pixels from the `ready` event until the queue evicts them

    @property
    def terminal(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def public_results(self, url_prefix: str = "/v1") -> list[dict[str, Any]]:
        return [{"index": r["index"], "url": f"{url_prefix}/jobs/{self.id}/results/{r['index']}",
                 "width": r["width"], "height": r["height"], "sha256": r["sha256"]} for r in self.results]

    def end(self, status: str, **event_fields: Any) -> None:
        """Move to a terminal state, publish the terminal event, free the inputs and wake waiters."""
        self.status = status
        self.finished_at = time.time()
        self.images = {}
        self.inputs = {}
        self.blobs = {}
        self.events.append(status, **event_fields)
        self.finished.set()
