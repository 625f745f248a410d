"""``POST /v1/images``: upload a PNG once, name it by id in any number of jobs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ..jobs.images import MAX_IMAGE_BYTES
from .auth import HTTP_AUTH
from .errors import ApiError
from .schemas import ERRORS, ImageUploaded

router = APIRouter(prefix="/v1", dependencies=HTTP_AUTH, responses=ERRORS, tags=["images"])


async def read_body_limited(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body is larger than {limit} bytes", "send a smaller image")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/images", status_code=201, response_model=ImageUploaded,
             openapi_extra={"requestBody": {"required": True, "content": {"image/png": {
                 "schema": {"type": "string", "format": "binary"}}}}})
async def upload_image(request: Request) -> ImageUploaded:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in ("image/png", "application/octet-stream"):
        raise ApiError(415, "unsupported_media_type", f"POST /v1/images takes a raw PNG body, not {ctype or 'nothing'}",
                       "send the PNG bytes as the body with Content-Type: image/png")
    data = await read_body_limited(request, MAX_IMAGE_BYTES)
    return ImageUploaded(id=await run_in_threadpool(request.app.state.scenecast.store.put, data))
