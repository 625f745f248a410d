"""Every error leaves the server as ``{"error": {"code", "message", "fix"}}`` (docs/protocol.md)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..jobs.images import ImageError
from ..jobs.queue import InputsTooLarge, JobExists, QueueFull, UnknownJob
from ..models import DeviceUnavailable, ModelError, ModelNotFound
from ..spec import validation_message

log = logging.getLogger("scenecast.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fix = status, code, message, fix


def error_body(code: str, message: str, fix: str | None) -> dict:
    return {"error": {"code": code, "message": message, "fix": fix}}


def _json(status: int, code: str, message: str, fix: str | None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, fix), status_code=status, headers=headers)


def model_error_status(exc: ModelError) -> int:
    if isinstance(exc, DeviceUnavailable):
        return 503
    if isinstance(exc, ModelNotFound):
        return 404
    return 400


def model_error_code(exc: ModelError) -> str:
    return getattr(exc, "code", "model_error")


SPEC_FIX = "correct the named fields; the job spec is described in docs/spec.md"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _json(exc.status, exc.code, exc.message, exc.fix, headers)

    @app.exception_handler(ValidationError)
    async def _spec(_: Request, exc: ValidationError) -> JSONResponse:
        return _json(422, "invalid_spec", validation_message(exc.errors()), SPEC_FIX)

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(422, "invalid_request", validation_message(list(exc.errors())), "see docs/protocol.md")

    @app.exception_handler(ImageError)
    async def _image(_: Request, exc: ImageError) -> JSONResponse:
        return _json(400, "bad_image", exc.message, exc.fix)

    @app.exception_handler(ModelError)
    async def _model(_: Request, exc: ModelError) -> JSONResponse:
        return _json(model_error_status(exc), model_error_code(exc), exc.message, exc.fix)

    @app.exception_handler(UnknownJob)
    async def _unknown(_: Request, exc: UnknownJob) -> JSONResponse:
        return _json(404, "unknown_job", f"no job {exc.args[0]!r} on this server",
                     "finished jobs are kept for a while only; submit the job again")

    @app.exception_handler(QueueFull)
    async def _full(_: Request, exc: QueueFull) -> JSONResponse:
        return _json(503, "queue_full", str(exc), "wait for queued jobs to finish, then submit again")

    @app.exception_handler(InputsTooLarge)
    async def _pixels(_: Request, exc: InputsTooLarge) -> JSONResponse:
        return _json(413, "too_many_pixels", str(exc), "send fewer or smaller control images, at the job's size")

    @app.exception_handler(JobExists)
    async def _exists(_: Request, exc: JobExists) -> JSONResponse:
        return _json(409, "job_exists", f"this server already has a job {exc.args[0]!r}",
                     "choose a new random id for every job (uuid4().hex)")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json(exc.status_code, code, str(exc.detail), "see docs/protocol.md for the endpoints")

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> Response:
        # A client that goes away mid-request (closed Blender, a dropped network) is normal: one line at
        # debug, and an answer that nobody reads. Handled here, uvicorn does not log it a second time.
        log.debug("client %s disconnected during %s %s", _client(request), request.method, request.url.path)
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _json(500, "internal", f"{type(exc).__name__}: {exc}", "the server log has the traceback")


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"
