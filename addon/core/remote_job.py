"""Run one generation job on the backend, from prepared inputs to result files on disk — no bpy.

This is the part of ``api.generate`` that may run off Blender's main thread: the add-on gathers the
scene's passes and settings on the main thread into a :class:`JobRequest` (plain data and PNG bytes),
then :func:`run_job` — in the caller's thread when blocking, in a worker thread under the modal
operator — makes sure a backend answers (starting the local one when allowed), picks the model,
submits, waits (events go to ``on_event``; ``cancel`` cancels on the server), downloads the results
and writes them atomically. Only turning the files into ``bpy.types.Image``s is left to the main thread.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import backend_lease, backend_process
from . import errors
from .client import BackendClient
from .errors import BackendUnavailable, JobCancelled, JobFailed, ScenecastError
from .files import write_atomic
from .jobspec import build_job_spec, image_keys

#: The model used when the default one cannot be had offline: tiny random weights, noise, but fast.
OFFLINE_MODEL = "builtin:tiny"

__all__ = ["JobCancelled", "JobFailed", "JobOutcome", "JobRequest", "OFFLINE_MODEL", "run_job", "write_atomic"]


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


@dataclass
class JobOutcome:
    job_id: str
    model: str
    files: list[str]
    status: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # things the user should be told (offline fallback)


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


def run_job(
    req: JobRequest,
    on_event: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    on_status: Callable[[str], None] | None = None,
) -> JobOutcome:
    """Run ``req`` to completion and write its results into ``req.output_dir``; see the module doc.

    Raises :class:`JobFailed` when the job fails, is cancelled or the server goes away mid-job, and
    the client's :class:`ScenecastError`s for anything before submission. No file is left half-written.
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
    job_id = client.submit(spec, {k: client.image_payload(v) for k, v in req.images.items() if k in needed})
    try:
        final = client.wait(job_id, on_event=on_event, cancel_event=cancel, timeout=req.timeout)
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
        path = os.path.join(req.output_dir, f"{_safe(req.name)}_{job_id[:12]}_{i:02d}.png")
        write_atomic(path, data)
        files.append(path)
    if not files:
        raise JobFailed(f"job {job_id} finished without results", "look at the backend log", job_id=job_id)
    return JobOutcome(job_id=job_id, model=model, files=files, status=final, notes=notes)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "scenecast"
