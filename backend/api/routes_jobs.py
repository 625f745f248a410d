"""Jobs over HTTP: submit (multipart or JSON; ``PUT`` with an id the client chose), status, cancel,
results (PNG, or raw pixels when asked) and the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from ..jobs import pixels
from ..jobs.images import IMAGE_ID, MAX_IMAGE_BYTES, InputImage, decode_png, probe_image
from ..jobs.queue import CLIENT_JOB_ID
from ..jobs.record import Job
from ..pipelines.sync import ingest as sync_ingest
from ..pipelines.sync.wire import CONTENT_TYPE as CORRESPONDENCE_TYPE
from ..spec import JobSpec, loads_json
from .auth import HTTP_AUTH
from .errors import ApiError
from .multipart import Limits, read_multipart
from .routes_images import read_body_limited
from .schemas import ERRORS, JobAccepted, JobCancelAnswer, JobStatus

router = APIRouter(prefix="/v1", dependencies=HTTP_AUTH, responses=ERRORS, tags=["jobs"])

MAX_SPEC_BYTES = 1024 * 1024
MAX_PARTS = 32
MAX_BODY_BYTES = 256 * 1024 * 1024  # a multipart submission in all (64 Mpx of raw RGB fits)
#: A texture_sync correspondence part (docs/protocol.md): 8 views of 1024² with both levels are ~51 MB raw
#: (6 bytes a pixel, the latent level adds 1/64), a few MB zlib-compressed.
MAX_CORRESPONDENCE_BYTES = 64 * 1024 * 1024
LIMITS = Limits(spec_bytes=MAX_SPEC_BYTES, part_bytes=MAX_IMAGE_BYTES, parts=MAX_PARTS, body_bytes=MAX_BODY_BYTES,
                blob_bytes=MAX_CORRESPONDENCE_BYTES, blob_types=frozenset({CORRESPONDENCE_TYPE}))
SPEC_REF = {"$ref": "#/components/schemas/JobSpec"}
SUBMIT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["spec"],
        "properties": {"spec": {"type": "string", "description": "the job spec as JSON text"}},
        "additionalProperties": {"type": "string", "format": "binary",
                                 "description": "one PNG file part per image key the spec names"}}},
    "application/json": {"schema": SPEC_REF}}}}


def parse_spec(text: str | bytes) -> JobSpec:
    """JSON text -> JobSpec. Bad JSON is a 400; a ValidationError becomes a 422 in errors.py."""
    try:
        data = loads_json(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "invalid_json", f"the spec is not valid JSON: {exc}", "send the job spec as a JSON object")
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_spec", "the spec must be a JSON object", "see docs/spec.md")
    return JobSpec.model_validate(data)


async def _read_multipart(request: Request) -> tuple[JobSpec, dict[str, bytearray]]:
    spec_text: bytes | None = None
    parts: dict[str, bytearray] = {}
    for part in await read_multipart(request, LIMITS):
        if part.name == "spec":
            spec_text = bytes(part.data)
            continue
        if part.filename is None:
            raise ApiError(400, "bad_image", f"part '{part.name}' arrived as a text field, not a file",
                           f"send '{part.name}' as a file part (with a filename and Content-Type: image/png)")
        if part.name in parts:
            raise ApiError(400, "duplicate_part", f"the request has two parts named '{part.name}'",
                           "send each image key once")
        parts[part.name] = part.data
    if spec_text is None:
        raise ApiError(400, "missing_spec", "the multipart request has no part named 'spec'",
                       "add a part 'spec' holding the job spec as JSON")
    return parse_spec(spec_text), parts


def _gather_blobs(spec: JobSpec, parts: dict[str, bytearray]) -> dict[str, bytearray]:
    """The parts that are not images (``spec.blob_keys()``: texture_sync correspondences), checked against
    the spec (``ingest.check``) and kept as received; the stage parses them again when the job runs."""
    blobs = {}
    for key in sorted(spec.blob_keys()):
        data = parts.get(key)
        if data is None:
            raise ApiError(400, "missing_correspondence", f"the texture_sync stage names correspondence '{key}' but"
                           f" the request has no part '{key}'", f"add a file part named '{key}' with Content-Type:"
                           f" {CORRESPONDENCE_TYPE} (addon/core/sync_views.encode writes it; docs/protocol.md)")
        if len(data) > MAX_CORRESPONDENCE_BYTES:  # a part sent under another Content-Type escaped the reader's limit
            raise ApiError(413, "part_too_large", f"correspondence part '{key}' is {len(data)} bytes, more than"
                           f" {MAX_CORRESPONDENCE_BYTES}", "send fewer views, smaller ones, or compress the part (zlib)")
        try:
            sync_ingest.check(bytes(data), spec, key)
        except ValueError as exc:
            raise ApiError(400, "bad_correspondence", f"correspondence part '{key}': {exc}",
                           "build it with addon/core/sync_views for this job's views, width and height"
                           " (docs/protocol.md, \"Correspondence part\")") from None
        blobs[key] = data
    return blobs


def _gather_images(spec: JobSpec, parts: dict[str, bytearray], store: Any) -> dict[str, InputImage]:
    """Check (without decoding) every image the spec names, from this request's parts or the upload store.
    Their sha256 for the record is taken by the worker once the result is out (off the client's path).
    Parts named by ``spec.blob_keys()`` are wanted too but are not images (``_gather_blobs``)."""
    wanted = spec.image_keys()
    blob_keys = spec.blob_keys()
    unexpected = sorted(set(parts) - wanted - blob_keys)
    if unexpected:
        raise ApiError(400, "unexpected_part", f"the request has image part(s) {unexpected} that the spec never names",
                       f"name them in the spec's controlnets/image/mask, or drop them; the spec names"
                       f" {sorted(wanted | blob_keys)}")
    images = {}
    for key in sorted(wanted):
        data: bytes | bytearray | None = parts.get(key)
        if data is None and IMAGE_ID.match(key):
            data = store.get(key)
            if data is None:
                raise ApiError(400, "missing_image", f"image '{key}' was never uploaded to this server",
                               "POST the PNG to /v1/images first, or send it as a part of this request")
        if data is None:
            raise ApiError(400, "missing_image", f"the spec names image '{key}' but the request has no part '{key}'",
                           f"add a file part named '{key}' with the PNG, or upload it and use its sha256 id")
        images[key] = probe_image(data, key)
    return images


def job_status(job: Job, position: int | None) -> JobStatus:
    return JobStatus(id=job.id, status=job.status, position=position, stage=job.stage, step=job.step, steps=job.steps,
                     error=job.error, results=job.public_results(),
                     record_url=f"/v1/jobs/{job.id}/record" if job.record is not None else None,
                     created=job.created, started=job.started, finished=job.finished_at)


@router.post("/jobs", status_code=202, response_model=JobAccepted, openapi_extra=SUBMIT_BODY)
async def submit_job(request: Request) -> JobAccepted:
    return await _submit(request, None)


@router.put("/jobs/{job_id}", status_code=202, response_model=JobAccepted, openapi_extra=SUBMIT_BODY)
async def submit_job_with_id(job_id: str, request: Request) -> JobAccepted:
    """Submit under an id the client chose (8-64 of ``A-Z a-z 0-9 _ -``), so that a load balancer hashing
    the path sends every request of the job to the same backend. An id the server knows: 409."""
    if not CLIENT_JOB_ID.match(job_id):
        raise ApiError(400, "bad_job_id", f"job id {job_id[:80]!r} is not 8 to 64 of A-Z a-z 0-9 _ -",
                       "use a random id, e.g. uuid4().hex")
    return await _submit(request, job_id)


async def _submit(request: Request, job_id: str | None) -> JobAccepted:
    state = request.app.state.scenecast
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        spec, parts = await _read_multipart(request)
    elif ctype == "application/json":
        spec, parts = parse_spec(await read_body_limited(request, MAX_SPEC_BYTES)), {}
    else:
        raise ApiError(415, "unsupported_media_type", f"POST /v1/jobs takes multipart/form-data or application/json, not {ctype or 'nothing'}",
                       "send the spec as a 'spec' part with PNG parts, or as JSON naming uploaded image ids")

    def gather_and_queue() -> Job:  # one hop off the event loop: file reads, model checks, the queue's lock
        images = _gather_images(spec, parts, state.store)
        return state.queue.submit(spec, images, {}, job_id, blobs=_gather_blobs(spec, parts))

    job = await run_in_threadpool(gather_and_queue)
    position = state.queue.position(job)
    return JobAccepted(id=job.id, status="queued", position=position if position is not None else 0)


@router.get("/jobs/{job_id}", response_model=JobStatus)
def get_job(job_id: str, request: Request) -> JobStatus:
    queue = request.app.state.scenecast.queue
    job = queue.get(job_id)
    return job_status(job, queue.position(job))


@router.post("/jobs/{job_id}/cancel", response_model=JobCancelAnswer)
def cancel_job(job_id: str, request: Request) -> JobCancelAnswer:
    """Queued: cancelled at once. Running: stops within one denoising step (watch the events)."""
    job = request.app.state.scenecast.queue.cancel(job_id)
    return JobCancelAnswer(id=job.id, status=job.status)


class PixelResponse(Response):
    """Raw pixels (``image/x-scenecast-pixels``) sent as the header and then the image's own memory:
    no copy of the samples on the loop (a 1024² result is 3 MB)."""

    def __init__(self, image: Any) -> None:
        self._pieces = pixels.pieces(image)
        super().__init__(None, media_type=pixels.MEDIA_TYPE)
        self.headers["content-length"] = str(sum(len(piece) for piece in self._pieces))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        header, samples = self._pieces
        await send({"type": "http.response.body", "body": header, "more_body": True})
        await send({"type": "http.response.body", "body": samples, "more_body": False})


def wants_pixels(request: Request) -> bool:
    """True when the Accept header asks for raw pixels (``image/x-scenecast-pixels``) over PNG."""
    return pixels.MEDIA_TYPE in request.headers.get("accept", "")


@router.get("/jobs/{job_id}/results/{n}", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}, pixels.MEDIA_TYPE: {}},
                             "description": "the PNG, parameters in its text chunks; raw pixels when the"
                                            f" request accepts {pixels.MEDIA_TYPE}"}})
async def get_result(job_id: str, n: int, request: Request) -> Response:
    job = request.app.state.scenecast.queue.get(job_id)
    outputs = job.outputs
    if wants_pixels(request) and outputs is not None and job.status in ("running", "done"):
        if not 0 <= n < len(outputs):
            raise ApiError(404, "no_such_result", f"job {job_id} has results 0..{len(outputs) - 1}, not {n}",
                           "use the urls listed in the job's results")
        return PixelResponse(outputs[n])
    return await run_in_threadpool(_saved_result, job, n, request)


def _saved_result(job: Job, n: int, request: Request) -> Response:
    job_id = job.id
    if job.status != "done":
        raise ApiError(409, "not_done", f"job {job_id} is {job.status}; results exist once it is done",
                       "wait for the `done` event")
    if not 0 <= n < len(job.results):
        raise ApiError(404, "no_such_result", f"job {job_id} has results 0..{len(job.results) - 1}, not {n}",
                       "use the urls listed in the job's results")
    path = Path(job.results[n]["path"])
    if not path.is_file():
        raise ApiError(410, "result_gone", f"the result file {path} was removed from the server's disk",
                       "run the job again")
    if wants_pixels(request):  # its pixels were dropped from memory: decode the file
        return PixelResponse(np.ascontiguousarray(decode_png(path.read_bytes(), f"result {n}")))
    return FileResponse(path, media_type="image/png")


@router.get("/jobs/{job_id}/record")
def get_record(job_id: str, request: Request) -> dict[str, Any]:
    """The JSON record: spec, input image hashes, resolved parameters, backend version and device."""
    job = request.app.state.scenecast.queue.get(job_id)
    if job.record is None:
        raise ApiError(409, "not_done", f"job {job_id} is {job.status}; the record exists once it is done",
                       "wait for the `done` event")
    return {**job.record, "results": [{k: r[k] for k in ("index", "width", "height", "sha256")} for r in job.results]}
