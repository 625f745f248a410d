"""Jobs over HTTP: submit (multipart or JSON), status, cancel, result PNGs and the record."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..jobs.images import IMAGE_ID, MAX_IMAGE_BYTES, decode_png
from ..jobs.record import Job
from ..spec import JobSpec, loads_json
from .auth import HTTP_AUTH
from .errors import ApiError
from .routes_images import read_body_limited
from .schemas import ERRORS, JobAccepted, JobCancelAnswer, JobStatus

router = APIRouter(prefix="/v1", dependencies=HTTP_AUTH, responses=ERRORS, tags=["jobs"])

MAX_SPEC_BYTES = 1024 * 1024
MAX_PARTS = 32
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


async def _read_multipart(request: Request) -> tuple[JobSpec, dict[str, bytes]]:
    form = await request.form(max_files=MAX_PARTS, max_fields=MAX_PARTS, max_part_size=MAX_IMAGE_BYTES)
    try:
        spec_part = form.get("spec")
        if spec_part is None:
            raise ApiError(400, "missing_spec", "the multipart request has no part named 'spec'",
                           "add a part 'spec' holding the job spec as JSON")
        if isinstance(spec_part, UploadFile) and (spec_part.size or 0) > MAX_SPEC_BYTES:
            raise ApiError(413, "spec_too_large", f"the spec part is {spec_part.size} bytes, more than {MAX_SPEC_BYTES}",
                           "send images as their own parts, not inside the spec")
        spec = parse_spec(await spec_part.read() if isinstance(spec_part, UploadFile) else spec_part)
        parts: dict[str, bytes] = {}
        for key, value in form.multi_items():
            if key == "spec":
                continue
            if not isinstance(value, UploadFile):
                raise ApiError(400, "bad_image", f"part '{key}' arrived as a text field, not a file",
                               f"send '{key}' as a file part (with a filename and Content-Type: image/png)")
            if (value.size or 0) > MAX_IMAGE_BYTES:  # checked before reading it into memory
                raise ApiError(413, "image_too_large", f"image part '{key}' is {value.size} bytes, more than"
                               f" {MAX_IMAGE_BYTES}", "send control images as PNGs at the job's width and height")
            parts[key] = await value.read()
        return spec, parts
    finally:
        await form.close()


def _gather_images(spec: JobSpec, parts: dict[str, bytes], store: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Decode every image the spec names, from this request's parts or the upload store."""
    wanted = spec.image_keys()
    unexpected = sorted(set(parts) - wanted)
    if unexpected:
        raise ApiError(400, "unexpected_part", f"the request has image part(s) {unexpected} that the spec never names",
                       f"name them in the spec's controlnets/image/mask, or drop them; the spec names {sorted(wanted)}")
    images, hashes = {}, {}
    for key in sorted(wanted):
        data = parts.get(key)
        if data is None and IMAGE_ID.match(key):
            data = store.get(key)
            if data is None:
                raise ApiError(400, "missing_image", f"image '{key}' was never uploaded to this server",
                               "POST the PNG to /v1/images first, or send it as a part of this request")
        if data is None:
            raise ApiError(400, "missing_image", f"the spec names image '{key}' but the request has no part '{key}'",
                           f"add a file part named '{key}' with the PNG, or upload it and use its sha256 id")
        images[key] = decode_png(data, key)
        hashes[key] = hashlib.sha256(data).hexdigest()
    return images, hashes


def job_status(job: Job, position: int | None) -> JobStatus:
    return JobStatus(id=job.id, status=job.status, position=position, stage=job.stage, step=job.step, steps=job.steps,
                     error=job.error, results=job.public_results(),
                     record_url=f"/v1/jobs/{job.id}/record" if job.record is not None else None,
                     created=job.created, started=job.started, finished=job.finished_at)


@router.post("/jobs", status_code=202, response_model=JobAccepted, openapi_extra=SUBMIT_BODY)
async def submit_job(request: Request) -> JobAccepted:
    state = request.app.state.scenecast
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        spec, parts = await _read_multipart(request)
    elif ctype == "application/json":
        spec, parts = parse_spec(await read_body_limited(request, MAX_SPEC_BYTES)), {}
    else:
        raise ApiError(415, "unsupported_media_type", f"POST /v1/jobs takes multipart/form-data or application/json, not {ctype or 'nothing'}",
                       "send the spec as a 'spec' part with PNG parts, or as JSON naming uploaded image ids")
    images, hashes = await run_in_threadpool(_gather_images, spec, parts, state.store)
    job = await run_in_threadpool(state.queue.submit, spec, images, hashes)
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


@router.get("/jobs/{job_id}/results/{n}", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "the PNG, parameters in its text chunks"}})
def get_result(job_id: str, n: int, request: Request) -> FileResponse:
    job = request.app.state.scenecast.queue.get(job_id)
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
    return FileResponse(path, media_type="image/png")


@router.get("/jobs/{job_id}/record")
def get_record(job_id: str, request: Request) -> dict[str, Any]:
    """The JSON record: spec, input image hashes, resolved parameters, backend version and device."""
    job = request.app.state.scenecast.queue.get(job_id)
    if job.record is None:
        raise ApiError(409, "not_done", f"job {job_id} is {job.status}; the record exists once it is done",
                       "wait for the `done` event")
    return {**job.record, "results": [{k: r[k] for k in ("index", "width", "height", "sha256")} for r in job.results]}
