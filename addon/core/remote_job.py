"""Run one generation job on the backend, from prepared inputs to result pixels and files — no bpy.

This is the part of ``api.generate`` that may run off Blender's main thread: the add-on gathers the
scene's passes and settings on the main thread into a :class:`JobRequest` (plain data and PNG bytes),
then :func:`run_job` — in the caller's thread when blocking, in a worker thread under the modal
operator — makes sure a backend answers (starting the local one when allowed), picks the model,
submits, follows the job (events go to ``on_event``; ``cancel`` cancels on the server) and returns
its results as pixels in a :class:`JobOutcome`.

The result files (the backend's PNGs with their text chunks, written atomically) are saved too, but
on a backend on this machine that announces results early (protocol 1.1 ``ready``) they are saved
by a background thread (``core.result_saver``) while the caller already uses the pixels: at 1024²
the backend's PNG encode and the add-on's PNG decode (~0.2 s a result) no longer stand between a job
and its use. The caller makes sure of the files with :meth:`JobOutcome.wait_files` (or stops their
saving with :meth:`JobOutcome.discard` when its run fails). Elsewhere (a remote backend, where the
PNG's bytes cost less than raw pixels, or a protocol-1.0 backend) the files are written before
``run_job`` returns, as before, and ``JobOutcome.image`` decodes one when it is asked for. Only turning results into ``bpy.types.Image``s is left to the main thread.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backend_lease, backend_process
from . import errors
from .client import BackendClient
from .errors import BackendError, BackendUnavailable, JobCancelled, JobFailed, ScenecastError
from .files import write_atomic
from .jobspec import build_job_spec, image_keys
from .png import decode_png
from . import result_saver
from .result_saver import ResultSaver

#: The model used when the default one cannot be had offline: tiny random weights, noise, but fast.
OFFLINE_MODEL = "builtin:tiny"

__all__ = ["JobCancelled", "JobFailed", "JobOutcome", "JobRequest", "OFFLINE_MODEL", "PendingFiles", "run_job",
           "write_atomic"]


@dataclass
class JobRequest:
    """Everything a job needs, gathered on the main thread; safe to hand to another thread."""

    server: str
    params: dict[str, Any]  # build_job_spec keyword arguments, except model/units
    units: list[dict[str, Any]]  # {image: key, type, weight, start, end, mode}
    images: dict[str, Any]  # key -> H x W x 3 uint8 control image (encoded off the main thread) or PNG bytes
    output_dir: str
    name: str = "scenecast"
    model: str | None = None  # explicit choice (argument or scene); None: the default, maybe offline
    default_model: str = OFFLINE_MODEL
    token: str = ""
    ca_file: str = ""  # PEM to trust for an https:// server (a TLS proxy's own certificate)
    auto_start: bool = True
    backend_python: str = ""
    backend_dir: str = ""
    log_path: str = ""
    timeout: float | None = None
    start_timeout: float = backend_process.DEFAULT_START_TIMEOUT
    offline: bool = False  # Blender's "Allow Online Access" is off: nothing may download
    models_folders: str = ""  # os.pathsep-separated ComfyUI / A1111 folders for a backend started here


@dataclass(eq=False)  # holds arrays: compared by identity
class JobOutcome:
    """What a job gave: its results as pixels (:meth:`image`: H x W x 3 uint8, row 0 at the top, sRGB
    as the backend made it) and as ``files`` (result ``n`` at ``files[n]``: the backend's PNG with its
    text chunks), which exist once :meth:`wait_files` returned — they may still be being written when
    ``run_job`` returns. ``pixels``: the results taken at ``ready``; empty when the files came first (a
    remote or protocol-1.0 backend, or a runner other than ``run_job``): :meth:`image` then decodes a
    file when it is first asked for. ``status``: the job's final status (``done``, with each result's
    ``sha256``) once the files are written; before, ``{"id", "status": "running", "results"}``."""

    job_id: str
    model: str
    files: list[str]
    status: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # things the user should be told (offline fallback)
    pixels: list[np.ndarray] = field(default_factory=list)
    saver: ResultSaver | None = field(default=None, repr=False)  # writing ``files`` in the background
    _decoded: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def image(self, index: int = 0) -> np.ndarray:
        """Result ``index`` as H x W x 3 uint8: the pixels ``run_job`` took (no file is read), else
        its file, decoded once (only what a feature asks for: Generate loads files, never decodes).
        Read-only (a view of the bytes received): copy it to change it."""
        if self.pixels:
            return self.pixels[index]
        if index not in self._decoded:
            with open(self.wait_files()[index], "rb") as fh:
                self._decoded[index] = as_rgb8(decode_png(fh.read()))
        return self._decoded[index]

    def wait_files(self, timeout: float | None = None) -> list[str]:
        """``files``, once they are all written; raises why they could not be (``JobFailed`` with the
        backend's error, e.g. its disk is full; ``ScenecastError`` for a disk error here; ``JobCancelled``
        after :meth:`discard` or a cancel), or ``WaitTimeout`` after ``timeout`` seconds (saving goes on)."""
        if self.saver is not None:
            self.status = self.saver.wait(timeout)
        return self.files

    @property
    def files_pending(self) -> bool:
        """Whether the files may still be being written (``wait_files`` has not returned yet)."""
        return self.saver is not None and self.saver.final is None and self.saver.error is None

    def discard(self) -> None:
        """Stop saving the files (the run that wanted them failed or was cancelled) and wait until the
        saving thread has ended: files already written stay, whole; no other is started."""
        if self.saver is not None:
            self.saver.stop()


class PendingFiles:
    """The outcomes of one run whose files may still be being saved. A feature adds each outcome,
    calls :meth:`wait` at the last point before it reports success (so a view's PNG is saved while
    the next view's job runs), and :meth:`discard` in a ``finally`` (a no-op after ``wait``), so no
    saving thread outlives a cancelled or failed run."""

    def __init__(self) -> None:
        self.outcomes: list[JobOutcome] = []

    def add(self, outcome: JobOutcome) -> JobOutcome:
        self.outcomes.append(outcome)
        return outcome

    def wait(self, timeout: float | None = None) -> list[str]:
        """Every added outcome's files, in order, once written; raises the first save's error."""
        return [path for outcome in self.outcomes for path in outcome.wait_files(timeout)]

    def discard(self) -> None:
        for outcome in self.outcomes:
            outcome.discard()


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 from decoded pixels that may be grey, grey+alpha, RGBA or 16-bit."""
    a = np.asarray(image)
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] in (1, 2):
        a = np.repeat(a[..., :1], 3, axis=2)
    return a[..., :3]


def offline() -> bool:
    """True when the hub must not be used (``HF_HUB_OFFLINE`` set to a true value)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def choose_model(client: BackendClient, requested: str | None, default: str,
                 no_network: bool = False) -> tuple[str, str | None]:
    """The model to run and, when it is not the one asked for, a note saying why.

    An explicit ``requested`` model is always used. The default model is used when the backend has it
    installed, or when it may download it (online). Offline without it: :data:`OFFLINE_MODEL`.
    """
    if requested:
        return requested, None
    if default == OFFLINE_MODEL:
        return default, None
    installed = {m.get("id") for m in client.models() if m.get("installed")}
    if default in installed:
        return default, None
    if offline() or no_network:
        return OFFLINE_MODEL, (
            f"Offline (HF_HUB_OFFLINE=1 or Blender's online access off) and the default model {default} is not installed on the backend:"
            f" using {OFFLINE_MODEL} (random weights, noise). Install the model, or go online, for real images."
        )
    return default, None


def ensure_server(
    req: JobRequest,
    cancel: threading.Event | None = None,
    on_status: Callable[[str], None] | None = None,
) -> tuple[BackendClient, str | None]:
    """A client whose server answered /v1/health; starts the local backend first when allowed.

    Returns the client and a note when a backend was started. Raises the client's errors (with their
    fixes) when nothing answers and starting is not allowed or not possible.
    """
    client = BackendClient(req.server, token=req.token or None, ca_file=req.ca_file or None)
    try:
        client.health()
        if backend_process.is_local_url(req.server):  # shared with other Blenders: say we use it
            backend_lease.hold(req.server, req.token)
        return client, None
    except BackendUnavailable as exc:
        if not (req.auto_start and backend_process.is_local_url(req.server)):
            if backend_process.is_local_url(req.server):
                raise BackendUnavailable(
                    f"no Scenecast backend answers at {req.server}",
                    "start it (python -m backend serve, or the Start Backend button), or turn on"
                    " Preferences › Add-ons › Scenecast › Start Local Backend Automatically",
                ) from exc
            raise
    if on_status is not None:
        on_status(f"starting the local backend on {req.server}…")
    try:
        backend = backend_process.ensure_backend(
            req.server, python=req.backend_python, backend_dir=req.backend_dir, token=req.token,
            log_path=req.log_path, timeout=req.start_timeout, cancel=cancel, offline=req.offline,
            models_folders=req.models_folders,
        )
    except backend_process.BackendProcessError as exc:
        raise BackendUnavailable(exc.message, exc.fix) from exc
    if backend is not None and backend.url != req.server.rstrip("/"):  # another port, or one left running
        client = BackendClient(backend.url, token=req.token or None)
    client.health()
    note = None
    if backend is not None:
        note = backend.note or f"Started a local backend on {backend.url}"
        note += f" (log: {backend.log_path})"
    return client, note


class _Ready(ScenecastError):
    """Raised by ``run_job``'s event callback at ``ready`` to end ``client.wait`` there (the job goes
    on); ``run_job`` always catches it. A ScenecastError like every error the add-on raises, so that
    were it ever to escape, it would still say what happened and what to do."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__("the job's results are ready (an internal signal that escaped)",
                         "report this as a bug; the results can be fetched from the backend by the job's id")
        self.data = data


def run_job(
    req: JobRequest,
    on_event: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    on_status: Callable[[str], None] | None = None,
) -> JobOutcome:
    """Run ``req`` until its results exist and return them; see the module doc.

    ``on_event`` gets every event up to the one that hands the results over (``ready``, or ``done``
    from a backend without ``ready``), in this thread; later ones (the ``done`` after ``ready``) are
    not passed on, since the caller has moved on. Raises :class:`JobFailed` when the job fails, is
    cancelled or the server goes away mid-job, ``WaitTimeout`` after ``req.timeout`` (the job keeps
    running), and the client's :class:`ScenecastError`s for anything before submission. No file is
    left half-written.
    """
    notes: list[str] = []
    client, note = ensure_server(req, cancel, on_status)
    if note:
        notes.append(note)
    model, note = choose_model(client, req.model, req.default_model, req.offline)
    if note:
        notes.append(note)
    if on_status is not None:
        on_status(f"submitting to {req.server} ({model})")
    spec = build_job_spec(model=model, units=req.units, **req.params)
    if cancel is not None and cancel.is_set():
        raise JobCancelled("cancelled before the job was submitted")
    needed = image_keys(spec)
    missing = sorted(needed - set(req.images))
    if missing:
        raise ScenecastError(
            f"the job needs images the add-on did not make: {', '.join(missing)}",
            f"use units and presets whose images are among: {', '.join(sorted(req.images))}",
        )
    # Arrays go as they are: on loopback submit sends raw pixels from their own memory (no copy).
    job_id = client.submit(spec, {k: v for k, v in req.images.items() if k in needed})
    savers = result_saver.start_deferred()  # earlier jobs' PNGs, saved while this thread waits on the network
    try:
        return _follow_job(client, req, job_id, model, notes, on_event, cancel)
    finally:
        result_saver.join(savers)  # no saver thread runs once this returns (Blender's rule for threads)


def _follow_job(client: BackendClient, req: JobRequest, job_id: str, model: str, notes: list[str],
                on_event: Callable[[Any], None] | None, cancel: threading.Event | None) -> JobOutcome:
    """``run_job`` from the submitted job to its outcome."""
    started = time.monotonic()
    early = client.sends_pixels()  # raw pixels before the PNG pay on this machine only (docs/protocol.md)

    def follow(event: Any) -> None:
        if on_event is not None:
            on_event(event)
        if early and event.type == "ready":
            raise _Ready(dict(event.data))

    ready: dict[str, Any] | None = None
    final: dict[str, Any] = {}
    try:
        try:  # client.wait: cancel, timeout, and polling when the stream breaks, up to `ready`
            final = client.wait(job_id, on_event=follow, cancel_event=cancel, timeout=req.timeout)
        except _Ready as got:
            ready = got.data
        if ready is not None:
            deadline = None if req.timeout is None else started + req.timeout
            return _take_ready(client, req, job_id, model, ready, notes, deadline)
    except BackendUnavailable as exc:
        raise JobFailed(
            f"the backend stopped answering during job {job_id}: {exc.message}",
            "look at the backend log or console, restart the backend and generate again",
            job_id=job_id,
        ) from exc
    except (KeyboardInterrupt, Exception) as exc:
        if not isinstance(exc, errors.WaitTimeout):  # a timeout leaves the job running, as documented
            try:  # interrupted (Ctrl-C in `blender -b`, a failing callback): free the GPU too
                client.cancel(job_id)
            except Exception:  # noqa: BLE001 - best effort; the original error is what matters
                pass
        raise
    state = final.get("status")
    if state == "cancelled":
        raise JobCancelled(f"job {job_id} was cancelled", job_id=job_id)
    if state != "done":
        error = final.get("error") or {}
        raise JobFailed(
            f"job {job_id} {state}: {error.get('message', 'no reason given')}",
            error.get("fix") or "look at the backend log for details",
            status=str(state), job_id=job_id,
        )
    files = []
    os.makedirs(req.output_dir, exist_ok=True)
    for i, _result in enumerate(final.get("results") or []):
        data = client.result(job_id, i)
        path = _result_path(req, job_id, i)
        write_atomic(path, data)
        files.append(path)
    if not files:
        raise JobFailed(f"job {job_id} finished without results", "look at the backend log", job_id=job_id)
    return JobOutcome(job_id=job_id, model=model, files=files, status=final, notes=notes)


def _take_ready(client: BackendClient, req: JobRequest, job_id: str, model: str, ready: dict[str, Any],
                notes: list[str], deadline: float | None) -> JobOutcome:
    """The outcome at ``ready``: every result's pixels from the backend's memory, and a started
    :class:`ResultSaver` writing the PNGs to the same names as ever."""
    results = list(ready.get("results") or [])
    if not results:
        raise JobFailed(f"job {job_id} finished without results", "look at the backend log", job_id=job_id)
    try:
        pixels = [as_rgb8(client.result_pixels(job_id, int(r.get("index", i)))) for i, r in enumerate(results)]
    except BackendError as exc:
        if exc.status != 409:
            raise
        pixels = []  # its memory budget dropped them before the PNG exists: they come from the PNG below
    files = [_result_path(req, job_id, i) for i in range(len(results))]
    # Started by the next job's run_job while it waits (result_saver's module doc); not stopped by `cancel`.
    saver = ResultSaver(client, job_id, files, deadline=deadline).defer()
    status = {"id": job_id, "status": "running", "results": results}
    outcome = JobOutcome(job_id=job_id, model=model, files=files, status=status, notes=notes, pixels=pixels,
                         saver=saver)
    if not pixels:
        outcome.wait_files()  # image() decodes them from the PNGs
    return outcome


def _result_path(req: JobRequest, job_id: str, index: int) -> str:
    return os.path.join(req.output_dir, f"{_safe(req.name)}_{job_id[:12]}_{index:02d}.png")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "scenecast"
