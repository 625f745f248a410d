"""The job queue: FIFO on one worker thread, because there is one accelerator to share.

Any thread may submit, cancel or look up; one worker thread runs jobs through the pipeline layer.
A queued job cancels at once; a running one stops at the pipeline's next step boundary (it polls
``Progress.cancelled()``). Every failure of a job ends in a ``failed`` event with a message and a fix;
nothing a job does stops the worker. Finished jobs stay queryable until ``keep_finished`` newer ones
have finished.

Memory: queued jobs hold their inputs as the bytes that arrived (decoded when the job starts), and the
queue caps the pixels one job and all queued jobs may decode into and the bytes they hold. Results are
announced (``ready``) and kept in memory as pixels before their PNGs are written, so a client on the
same machine can take them at once; the last ``keep_output_pixels`` worth stay for raw fetches.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..models import ModelError
from ..pipelines.interface import JobCancelled, JobResult
from ..spec import JobSpec
from .images import ImageError, InputImage
from .outputs import build_record, parameters_text, write_results
from .progress import JobProgress
from .record import Job

log = logging.getLogger("scenecast.jobs")

Runner = Callable[[JobSpec, dict[str, np.ndarray], Any, JobProgress], JobResult]
ResultPlace = Callable[[Job], tuple[Path, str]]
"""Where a job's files go: (directory, stem) -> ``stem-0.png ...`` and ``stem.json``."""


#: Ids a client may choose (``PUT /v1/jobs/{id}``): long enough to be unguessable when random.
CLIENT_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_JOB_PIXELS = 64 << 20  # 4 inputs of 4096², 64 of 1024²: ~200 MB once decoded
MAX_QUEUED_PIXELS = 1 << 30  # what all waiting jobs would decode into
MAX_QUEUED_BYTES = 1 << 30  # what all waiting jobs hold as received (PNG or raw pixels)
KEEP_OUTPUT_PIXELS = 64 << 20  # finished results kept as pixels for raw fetches
WRITER_NICE = 10  # result PNGs are encoded at this niceness, behind the server's answers


class QueueFull(Exception):
    pass


class UnknownJob(KeyError):
    pass


class InputsTooLarge(Exception):
    """A job whose inputs would decode into more pixels than one job may hold (HTTP 413)."""


class JobExists(Exception):
    """A client-chosen id that this server already knows (HTTP 409)."""


Input = InputImage | np.ndarray


def _lower_priority() -> None:
    """Nice the calling thread (Linux: a thread id is a process id to setpriority); best effort."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
    except (AttributeError, OSError):
        pass


def _pixels(image: Input) -> int:
    return image.pixels if isinstance(image, InputImage) else int(image.shape[0] * image.shape[1])


def _bytes(job: Job) -> int:
    return sum(len(i.data) for i in job.inputs.values()) + sum(len(b) for b in job.blobs.values())


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
    # -- VAE (issue 13): found, and of the base's latent channels, before queueing
    for stage in spec.stages:
        vae = spec.resolved(stage, "vae")
        if vae and hasattr(models, "check_vae"):
            models.check_vae(vae, spec.resolved(stage, "model"))
    _check_references(spec, models)


def _check_references(spec: JobSpec, models: Any) -> None:
    """Reference images on a family without a reference input are refused at submit (400), not after queueing."""
    from ..models.ip_adapter import check_reference_family  # noqa: PLC0415

    for stage in spec.stages:
        if getattr(stage, "reference", None) and hasattr(models, "family"):  # any stage, texture_sync included
            check_reference_family(models.family(spec.resolved(stage, "model")))


class JobQueue:
    def __init__(self, runner: Runner, models: Any, out_dir: Path, *, keep_finished: int = 200,
                 max_queued: int = 256, place: ResultPlace | None = None, max_job_pixels: int = MAX_JOB_PIXELS,
                 max_queued_pixels: int = MAX_QUEUED_PIXELS, max_queued_bytes: int = MAX_QUEUED_BYTES,
                 keep_output_pixels: int = KEEP_OUTPUT_PIXELS) -> None:
        self._runner = runner
        self._models = models
        self.out_dir = Path(out_dir)
        self._keep_finished = keep_finished
        self._max_queued = max_queued
        self.max_job_pixels = max_job_pixels
        self.max_queued_pixels = max_queued_pixels
        self.max_queued_bytes = max_queued_bytes
        self._keep_output_pixels = keep_output_pixels
        self._with_outputs: collections.deque[Job] = collections.deque()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="scenecast-writer", initializer=_lower_priority)
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
        self._writer.shutdown(wait=False)

    # -- client side -----------------------------------------------------------------------------
    def submit(self, spec: JobSpec, images: dict[str, Input], input_hashes: dict[str, str],
               job_id: str | None = None, blobs: dict[str, bytes | bytearray] | None = None) -> Job:
        """Check the limits and models, then queue. Raises InputsTooLarge, JobExists, ModelError (the request
        is wrong) or QueueFull. ``images``: inputs as received (decoded when the job starts) or arrays.
        ``blobs``: parts that are not images (``spec.blob_keys()``, already checked), handed to the runner
        under their keys as the bytes received; counted in the queue's byte limit, hashed into the record."""
        pixels = sum(_pixels(i) for i in images.values())
        if pixels > self.max_job_pixels:
            raise InputsTooLarge(f"the job's images hold {pixels} pixels, more than the {self.max_job_pixels}"
                                 " one job may hold")
        check_models(spec, self._models)
        job = Job(spec=spec, images={k: v for k, v in images.items() if isinstance(v, np.ndarray)},
                  input_hashes=input_hashes, inputs={k: v for k, v in images.items() if isinstance(v, InputImage)},
                  blobs=dict(blobs or {}))
        if job_id is not None:
            job.id = job_id
        with self._lock:
            if self._stopping:
                raise QueueFull("the server is shutting down")
            if job.id in self._jobs:
                raise JobExists(job.id)
            if len(self._pending) >= self._max_queued:
                raise QueueFull(f"{len(self._pending)} jobs are already waiting (the limit is {self._max_queued})")
            queued_pixels = sum(_pixels(i) for j in self._pending for i in (*j.inputs.values(), *j.images.values()))
            if pixels and queued_pixels + pixels > self.max_queued_pixels:
                raise QueueFull(f"the waiting jobs' images hold {queued_pixels} pixels; with this job's {pixels}"
                                f" that is over the queue's limit of {self.max_queued_pixels}")
            queued_bytes, size = sum(_bytes(j) for j in self._pending), _bytes(job)
            if size and queued_bytes + size > self.max_queued_bytes:
                raise QueueFull(f"the waiting jobs hold {queued_bytes} bytes of inputs; with this job's {size} that"
                                f" is over the queue's limit of {self.max_queued_bytes}")
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
            job.images = {**job.images, **{key: image.decode(key) for key, image in job.inputs.items()}}
        except ImageError as exc:
            log.warning("job %s failed: %s", job.id, exc.message)
            job.error = {"code": "bad_image", "message": exc.message, "fix": exc.fix}
            return "failed", {"error": job.error}
        try:
            inputs: dict[str, Any] = {**job.images, **job.blobs}  # blobs: raw bytes the stage parses
            result = self._runner(job.spec, inputs, self._models, JobProgress(job))
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
        self._hold_outputs(job, result.images)
        job.events.append("ready", results=[{"index": n, "url": f"/v1/jobs/{job.id}/results/{n}",
                                             "width": int(im.shape[1]), "height": int(im.shape[0])}
                                            for n, im in enumerate(result.images)])
        try:
            record, results = self._writer.submit(self._save, job, result).result()
        except Exception as exc:
            log.exception("job %s: writing results failed", job.id)
            job.error = {"code": "output_error", "message": f"could not write the results: {exc}",
                         "fix": f"check that {self.out_dir} is writable and has space"}
            return "failed", {"error": job.error}
        job.record, job.results = record, results
        log.info("job %s done in %.2f s", job.id, time.time() - (job.started or job.created))
        return "done", {"results": job.public_results()}

    def _save(self, job: Job, result: JobResult) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The record and the PNGs with their metadata, on the writer thread (low CPU priority, so that
        a client taking the result's pixels right now is not slowed by the PNG encoder)."""
        job.input_hashes = {**{k: hashlib.sha256(v.data).hexdigest() for k, v in job.inputs.items()},
                            **{k: hashlib.sha256(v).hexdigest() for k, v in job.blobs.items()},
                            **job.input_hashes}
        record = build_record(job.id, job.spec, job.input_hashes, result.info, self.device())
        directory, stem = self._place(job)
        return record, write_results(directory, stem, result.images, parameters_text(job.spec, result.info), record)

    def device(self) -> dict[str, Any]:
        if self._device is None:  # what never changes; what is cached does, so it is not recorded
            self._device = {k: v for k, v in self._models.describe().items()
                            if k not in ("cached", "free_device_gb", "memory_plans")}
        return self._device

    def _hold_outputs(self, job: Job, images: list[np.ndarray]) -> None:
        """Keep a job's result pixels for raw fetches; drop the oldest others' beyond the budget."""
        with self._lock:
            job.outputs = list(images)
            self._with_outputs.append(job)
            held = sum(_pixels(im) for j in self._with_outputs for im in j.outputs or ())
            while held > self._keep_output_pixels and len(self._with_outputs) > 1:
                old = self._with_outputs.popleft()
                held -= sum(_pixels(im) for im in old.outputs or ())
                old.outputs = None

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
