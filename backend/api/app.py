"""The FastAPI application: routers per resource, one auth dependency, errors in one shape.

``create_app`` takes a ready :class:`ServerState` so the same app serves the CLI's ``serve`` command
and anything else that builds the jobs layer itself.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from ..jobs.images import ImageStore
from ..jobs.queue import JobQueue
from ..spec import JobSpec
from ..version import PROTOCOL, __version__
from . import routes_events, routes_images, routes_info, routes_jobs, routes_sdapi
from .auth import require_token
from .errors import install_error_handlers
from .origin import LoopbackOnlyMiddleware


@dataclass
class ServerState:
    queue: JobQueue
    store: ImageStore
    models: Any  # backend.models.ModelManager
    device: dict[str, Any]  # ModelManager.describe(): device, dtype
    token: str | None = None
    retention: Any = None  # backend.jobs.retention.Retention: its periodic pass runs while the app does


def create_app(state: ServerState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.queue.start()
        if state.retention is not None:
            state.retention.start()
        try:
            yield
        finally:
            if state.retention is not None:
                state.retention.stop()
            state.queue.stop()

    app = FastAPI(title="Scenecast backend", version=__version__, lifespan=lifespan,
                  description=f"Protocol {PROTOCOL}; see docs/protocol.md.",
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.scenecast = state
    app.add_middleware(LoopbackOnlyMiddleware, token_of=lambda: state.token)
    install_error_handlers(app)
    for module in (routes_info, routes_images, routes_jobs, routes_events, routes_sdapi):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            spec_schema = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(spec_schema.pop("$defs", {}))
            components["JobSpec"] = spec_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # The API description sits behind the same token as everything else.
    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_token)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Scenecast backend")

    return app
