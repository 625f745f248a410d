"""The job queue: FIFO on one worker thread, because there is one accelerator to share.

Any thread may submit, cancel or look up; one worker thread runs jobs through the pipeline layer.
A queued job cancels at once; a running one stops at the pipeline's next step boundary (it polls
``Progress.cancelled()``). Every failure of a job ends in a ``failed`` event with a message and a fix;
nothing a job does stops the worker. Finished jobs stay queryable until ``keep_finished`` newer ones
have finished.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..models import ModelError
from ..pipelines.interface import JobCancelled, JobResult
from ..spec import JobSpec
from .outputs import build_record, parameters_text, write_results
from .progress import JobProgress
from .record import Job

log = logging.getLogger("scenecast.jobs")

Runner = Callable[[JobSpec, dict[str, np.ndarray], Any, JobProgress], JobResult]
ResultPlace = Callable[[Job], tuple[Path, str]]
"""Where a job's files go: (directory, stem) -> ``stem-0.png ...`` and ``stem.json``."""


class QueueFull(Exception):
    pass


class UnknownJob(KeyError):
    pass


def check_models(spec: JobSpec, models: Any) -> None:
    """Ask the model manager about every model the spec names (fast; raises ModelError) before queueing.

    ControlNet units without a ``model`` get their default at run time, where a missing one fails the job.
    """
    wanted: dict[tuple[str, str], None] = {}
    for stage in spec.stages:
        wanted[(spec.resolved(stage, "model"), "base")] = None
        wanted.update({(u.model, "controlnet"): None for u in stage.controlnets if u.model})
        wanted.update({(lora.name, "lora"): None for lora in spec.resolved(stage, "loras") or []})
    for name, kind in wanted:
        models.check(name, kind)


class JobQueue:
    def __init__(self, runner: Runner, models: Any, out_dir: Path, *, keep_finished: int = 200,
                 max_queued: int = 256, place: ResultPlace | None = None) -> None:
        self._runner = runner
        self._models = models
        self.out_dir = Path(out_dir)
        self._keep_finished = keep_finished
        self._max_queued = max_queued
        self._place = place or (lambda job: (self.out_dir / job.id, "result"))
        self._lock = threading.Condition()
        self._pending: collections.deque[Job] = collections.deque()
        self._jobs: dict[str, Job] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._running: Job | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._device: dict[str, Any] | None = None
        self.on_forget: Callable[[Job], None] | None = None
        """Called (outside the lock) with each finished job the queue forgets: the server deletes its files."""

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="scenecast-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what is queued and running, and wait for the worker to leave."""
        with self._lock:
            self._stopping = True
            pending = list(self._pending)
            self._pending.clear()
            if self._running is not None:
                self._running.cancel_requested.set()
            self._lock.notify_all()
        for job in pending:
            job.end("cancelled")
        if self._thread is not None:
            self._thread.join(timeout)

    # -- client side -----------------------------------------------------------------------------
    def submit(self, spec: JobSpec, images: dict[str, np.ndarray], input_hashes: dict[str, str]) -> Job:
        """Check the models, then queue. Raises ModelError (the request is wrong) or QueueFull."""
        check_models(spec, self._models)
        job = Job(spec=spec, images=images, input_hashes=input_hashes)
        with self._lock:
            if self._stopping:
                raise QueueFull("the server is shutting down")
            if len(self._pending) >= self._max_queued:
                raise QueueFull(f"{len(self._pending)} jobs are already waiting")
            self._pending.append(job)
            self._jobs[job.id] = job
            position = len(self._pending) - 1 + (self._running is not None)
            job.events.append("queued", position=position)
            self._lock.notify_all()
        log.info("job %s queued at position %d (%s)", job.id, position, spec.name or "unnamed")
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(job_id)
        return job

    def position(self, job: Job) -> int | None:
        """Jobs ahead of this one, the running one included; None unless queued."""
        with self._lock:
            if job.status != "queued":
                return None
            try:
                return self._pending.index(job) + (self._running is not None)
            except ValueError:
                return None

    def queued(self) -> int:
        with self._lock:
            return len(self._pending)

    def running(self) -> Job | None:
        with self._lock:
            return self._running

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self._lock:
            if job in self._pending:
                self._pending.remove(job)
                dequeued = True
            else:
                dequeued = False
                if not job.terminal:
                    job.cancel_requested.set()
        if dequeued:
            self._retire(job)
            job.end("cancelled")
            log.info("job %s cancelled while queued", job.id)
        return job

    # -- worker side -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._pending.popleft()
                self._running = job
                job.status = "running"
                job.started = time.time()
            try:
                status, fields = self._run(job)
            except BaseException:  # never let a job end the worker
                log.exception("job %s: unexpected error in the worker", job.id)
                job.error = {"code": "internal", "message": "the worker failed", "fix": "see the server log"}
                status, fields = "failed", {"error": job.error}
            # Free the worker slot and file the job under finished before anyone hears it ended, so
            # that whoever waits on the terminal event sees the queue in its new state.
            with self._lock:
                self._running = None
            self._retire(job)
            job.end(status, **fields)

    def _run(self, job: Job) -> tuple[str, dict[str, Any]]:
        """Run one job; return its terminal status and the terminal event's fields."""
        job.events.append("started")
        log.info("job %s started", job.id)
        try:
            result = self._runner(job.spec, job.images, self._models, JobProgress(job))
        except JobCancelled:
            log.info("job %s cancelled at stage %s step %s", job.id, job.stage, job.step)
            return "cancelled", {}
        except ModelError as exc:
            log.warning("job %s failed: %s", job.id, exc.message)
            job.error = {"code": getattr(exc, "code", "model_error"), "message": exc.message, "fix": exc.fix}
            return "failed", {"error": job.error}
        except Exception as exc:
            log.exception("job %s failed in the pipeline", job.id)
            job.error = {"code": "pipeline_error", "message": f"{type(exc).__name__}: {exc}",
                         "fix": "the server log has the traceback; check the spec's images and models"}
            return "failed", {"error": job.error}
        if job.cancel_requested.is_set():
            return "cancelled", {}
        try:
            record = build_record(job.id, job.spec, job.input_hashes, result.info, self.device())
            directory, stem = self._place(job)
            results = write_results(directory, stem, result.images, parameters_text(job.spec, result.info), record)
        except Exception as exc:
            log.exception("job %s: writing results failed", job.id)
            job.error = {"code": "output_error", "message": f"could not write the results: {exc}",
                         "fix": f"check that {self.out_dir} is writable and has space"}
            return "failed", {"error": job.error}
        job.record, job.results = record, results
        log.info("job %s done in %.2f s", job.id, time.time() - (job.started or job.created))
        return "done", {"results": job.public_results()}

    def device(self) -> dict[str, Any]:
        if self._device is None:  # what never changes; what is cached does, so it is not recorded
            self._device = {k: v for k, v in self._models.describe().items()
                            if k not in ("cached", "free_device_gb", "memory_plans")}
        return self._device

    def _retire(self, job: Job) -> None:
        """Remember a finished job; forget the oldest beyond ``keep_finished`` (and tell ``on_forget``)."""
        forgotten = []
        with self._lock:
            self._finished.append(job.id)
            while len(self._finished) > self._keep_finished:
                old = self._jobs.pop(self._finished.popleft(), None)
                if old is not None:
                    forgotten.append(old)
        for old in forgotten:
            if self.on_forget is not None:
                self.on_forget(old)

    def restore(self, jobs: list[Job]) -> None:
        """File jobs that finished in an earlier run (oldest first) as finished ones, subject to the bound."""
        for job in jobs:
            with self._lock:
                self._jobs[job.id] = job
            self._retire(job)
