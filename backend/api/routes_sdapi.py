"""The AUTOMATIC1111 / Forge API subset, as an adapter over our job queue (docs/a1111.md).

Tools written for A1111 (``/sdapi/v1/txt2img``, ``/img2img`` with ControlNet units, ``/progress``,
``/interrupt``, the ControlNet extension's ``/controlnet/model_list``) drive this server unchanged.
Each request becomes ordinary jobs: the same spec validation, model checks, image limits and queue as
``POST /v1/jobs``, behind the same origin guard; the token is accepted as a Bearer header or as the
password of HTTP Basic auth (what A1111's ``--api-auth`` clients send). A request blocks until its
images are made, as A1111's does, but the jobs are queued with everyone else's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from ..jobs.outputs import encode_png
from ..jobs.record import Job
from ..spec import JobSpec, validation_message
from ..version import __version__
from . import sdapi_answer as answer
from . import sdapi_translate as tr
from .auth import presented_token, token_ok
from .errors import ApiError
from .routes_images import read_body_limited
from .routes_jobs import _gather_images

#: Base64 images in JSON: room for an init image, a mask and four control maps at the image limits' usual sizes.
MAX_BODY_BYTES = 64 * 1024 * 1024


async def require_token_or_basic(conn: HTTPConnection) -> None:
    """The server's token as ``Authorization: Bearer`` or as the password of HTTP Basic auth (any user name)."""
    expected = conn.app.state.scenecast.token
    given = presented_token(conn)
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    if given is None and scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            given = None
    if token_ok(expected, given):
        return
    raise ApiError(401, "unauthorized", "this server needs a token and the request has none or a wrong one",
                   "send `Authorization: Bearer <token>`, or HTTP Basic auth with the token as the password")


router = APIRouter(dependencies=[Depends(require_token_or_basic)], tags=["a1111"])


@dataclass(eq=False)  # compared by identity: Job's generated __eq__ would compare numpy inputs
class _Request:
    jobs: list[Job]
    started: float = field(default_factory=time.time)
    interrupted: bool = False


class AdapterState:
    """What A1111 keeps globally: the selected checkpoint, and the requests in flight (for progress/interrupt)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checkpoint: str | None = None
        self.requests: list[_Request] = []


def _adapter(request: Request) -> AdapterState:
    state = getattr(request.app.state, "sdapi", None)
    if state is None:
        state = request.app.state.sdapi = AdapterState()
    return state


def _unsupported(exc: tr.Unsupported) -> ApiError:
    return ApiError(422, "unsupported_field", f"{exc.field}: {exc.message}", exc.fix)


def _renamed(exc: ValidationError, names: dict[str, str]) -> ApiError:
    """Spec validation errors, with our field paths replaced by the request's A1111 field names."""
    lines = []
    for err in exc.errors():
        line = validation_message([err])
        path, sep, rest = line.partition(": ")
        for ours in sorted(names, key=len, reverse=True):
            if path == ours or path.startswith(ours + "."):
                path = names[ours] + path[len(ours):]
                break
        lines.append(f"{path}{sep}{rest}")
    return ApiError(422, "invalid_request", "; ".join(lines), "correct the named fields (docs/a1111.md)")


async def _read_json(request: Request) -> Any:
    raw = await read_body_limited(request, MAX_BODY_BYTES)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}", "send the parameters as a JSON object")


async def _wait(job: Job) -> None:
    """Until the job ends, without holding a thread: its terminal event wakes this coroutine."""
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()

    def on_event(event: Any) -> None:
        if event.terminal:
            loop.call_soon_threadsafe(ended.set)

    replay = job.events.subscribe(on_event)
    if job.terminal or (replay and replay[-1].terminal):
        ended.set()
    try:
        await ended.wait()
    finally:
        job.events.unsubscribe(on_event)


def _specs_and_inputs(t: tr.Translated, store: Any) -> tuple[list[JobSpec], dict[str, Any], dict[str, str]]:
    """Validate every spec and send the images through the same decode path as ``POST /v1/jobs``."""
    try:
        specs = [JobSpec.model_validate(s) for s in t.specs]
    except ValidationError as exc:
        raise _renamed(exc, t.names) from None
    parts = {key: encode_png(img) for key, img in t.images.items()}
    images = _gather_images(specs[0], parts, store)  # checked, not decoded: the worker decodes and hashes them
    return specs, images, {}


async def _generate(request: Request, kind: str) -> dict[str, Any]:
    state, adapter = request.app.state.scenecast, _adapter(request)
    body = await _read_json(request)
    try:
        t = await run_in_threadpool(tr.translate, body, kind, adapter.checkpoint)
    except tr.Unsupported as exc:
        raise _unsupported(exc) from None
    specs, images, hashes = await run_in_threadpool(_specs_and_inputs, t, state.store)
    entry = _Request(jobs=[])
    try:
        for spec in specs:
            entry.jobs.append(await run_in_threadpool(state.queue.submit, spec, images, hashes))
    except BaseException:
        for job in entry.jobs:
            state.queue.cancel(job.id)
        raise
    with adapter.lock:
        adapter.requests.append(entry)
    try:
        for job in entry.jobs:
            await _wait(job)
    finally:
        with adapter.lock:
            adapter.requests[:] = [r for r in adapter.requests if r is not entry]
    failed = next((job for job in entry.jobs if job.status == "failed"), None)
    if failed is not None:
        error = failed.error or {}
        raise ApiError(500, str(error.get("code", "failed")), str(error.get("message", "the job failed")), error.get("fix"))
    done = [(job, seed) for job, seed in zip(entry.jobs, t.seeds) if job.status == "done"]
    send = body.get("send_images", True) is not False
    pngs = await run_in_threadpool(lambda: [Path(job.results[0]["path"]).read_bytes() for job, _ in done] if send else [])
    seeds = [seed for _, seed in done]
    return {"images": [answer.encode_b64(p) for p in pngs], "parameters": answer.echo_parameters(body),
            "info": json.dumps(answer.info(t, body, seeds, f"scenecast {__version__}"))}


@router.post("/sdapi/v1/txt2img")
async def txt2img(request: Request) -> dict[str, Any]:
    """A1111 txt2img: blocks until the images are made; ``images`` are base64 PNGs with A1111 ``parameters``."""
    return await _generate(request, "txt2img")


@router.post("/sdapi/v1/img2img")
async def img2img(request: Request) -> dict[str, Any]:
    """A1111 img2img, and inpainting when a ``mask`` is sent (white repaints)."""
    return await _generate(request, "img2img")


async def _models(request: Request, kind: str) -> list[dict[str, Any]]:
    listed = await run_in_threadpool(request.app.state.scenecast.models.list_models)
    return [m for m in listed if m.get("kind") == kind and m.get("installed")]


@router.get("/sdapi/v1/sd-models")
async def sd_models(request: Request) -> list[dict[str, Any]]:
    """Installed base models in A1111's shape; ``title`` is what ``sd_model_checkpoint`` takes."""
    return [{"title": m["id"], "model_name": m["id"], "hash": None, "sha256": None, "filename": m["id"], "config": None}
            for m in await _models(request, "base")]


@router.get("/controlnet/model_list")
async def controlnet_models(request: Request) -> dict[str, list[str]]:
    """Installed ControlNets (the ControlNet extension's endpoint); a unit's ``model`` takes these names."""
    return {"model_list": [m["id"] for m in await _models(request, "controlnet")]}


@router.get("/controlnet/module_list")
def controlnet_modules() -> dict[str, Any]:
    """No preprocessors run here: control maps arrive finished (the add-on renders them), so only ``none``."""
    return {"module_list": ["none"], "module_detail": {"none": {"model_free": False, "sliders": []}}}


@router.get("/sdapi/v1/samplers")
def samplers() -> list[dict[str, Any]]:
    aliases: dict[str, list[str]] = {}
    for alias, ours in tr.SAMPLERS.items():
        aliases.setdefault(ours, []).append(alias)
    return [{"name": title, "aliases": sorted(a for a in aliases.get(ours, []) if a != title.lower()), "options": {}}
            for ours, title in tr.SAMPLER_TITLES.items()]


@router.get("/sdapi/v1/options")
def get_options(request: Request) -> dict[str, Any]:
    """Only the setting this adapter keeps: the checkpoint used when a request names none."""
    return {"sd_model_checkpoint": _adapter(request).checkpoint or ""}


@router.post("/sdapi/v1/options")
async def set_options(request: Request) -> None:
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, "unsupported_field", "body: expected a JSON object", "send {\"sd_model_checkpoint\": ...}")
    for key in body:
        if key != "sd_model_checkpoint":
            raise ApiError(422, "unsupported_field", f"{key}: this setting is not available here",
                           "only sd_model_checkpoint can be set")
    if "sd_model_checkpoint" in body:
        name = tr.model_of({"override_settings": {"sd_model_checkpoint": body["sd_model_checkpoint"]}}, None)
        await run_in_threadpool(request.app.state.scenecast.models.check, name, "base")  # ModelError -> 404/400
        _adapter(request).checkpoint = name
    return None


@router.get("/sdapi/v1/progress")
def progress(request: Request, skip_current_image: bool = False) -> dict[str, Any]:
    """The running job, as A1111 reports its one global state; ``job_count`` counts queued and running jobs."""
    queue, adapter = request.app.state.scenecast.queue, _adapter(request)
    running = queue.running()
    waiting = queue.queued() + (running is not None)
    with adapter.lock:
        mine = next((r for r in adapter.requests if any(j is running for j in r.jobs)), None)
    step, steps = (running.step or 0, running.steps or 0) if running is not None else (0, 0)
    fraction = step / steps if steps else 0.0
    job_no = 0
    if mine is not None:
        job_no = next(i for i, j in enumerate(mine.jobs) if j is running)
        fraction = (job_no + fraction) / len(mine.jobs)
    started = running.started if running is not None and running.started else None
    elapsed = time.time() - (mine.started if mine is not None else started or time.time())
    eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
    image = None
    if running is not None and not skip_current_image:
        previews = [e for e in running.events.replay() if e.type == "preview" and e.png]
        image = answer.encode_b64(previews[-1].png) if previews else None
    return {"progress": round(fraction, 4), "eta_relative": round(eta, 2),
            "state": {"skipped": False, "interrupted": bool(mine and mine.interrupted), "stopping_generation": False,
                      "job": f"task({running.id})" if running is not None else "", "job_count": waiting,
                      "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(started)) if started else "0",
                      "job_no": job_no, "sampling_step": step, "sampling_steps": steps},
            "current_image": image, "textinfo": None}


@router.post("/sdapi/v1/interrupt")
def interrupt(request: Request) -> dict[str, Any]:
    """Stop the A1111 request being processed: its running job within a step, its queued ones at once.

    Only requests made through this adapter are touched: an add-on's job is never interrupted from here.
    """
    queue, adapter = request.app.state.scenecast.queue, _adapter(request)
    with adapter.lock:
        current = adapter.requests[0] if adapter.requests else None
        if current is not None:
            current.interrupted = True
    for job in current.jobs if current is not None else []:
        if not job.terminal:
            queue.cancel(job.id)
    return {}
