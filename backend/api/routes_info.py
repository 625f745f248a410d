"""Read-only facts about the server: health, installed models, shipped presets."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ..spec import list_presets
from ..version import PROTOCOL, __version__
from .auth import HTTP_AUTH
from .schemas import ERRORS, Health, ModelList, PresetList

router = APIRouter(prefix="/v1", dependencies=HTTP_AUTH, responses=ERRORS, tags=["server"])


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    state = request.app.state.scenecast
    running = state.queue.running()
    memory = state.models.describe_memory() if hasattr(state.models, "describe_memory") else {}
    return Health(status="ok", version=__version__, protocol=PROTOCOL, device=str(state.device["device"]),
                  dtype=str(state.device["dtype"]), queue=state.queue.queued(),
                  running=running.id if running else None, **memory)


@router.get("/models", response_model=ModelList)
async def models(request: Request) -> ModelList:
    # Listing scans the HF cache and local folders: off the event loop.
    return ModelList(models=await run_in_threadpool(request.app.state.scenecast.models.list_models))


@router.get("/presets", response_model=PresetList)
def presets() -> PresetList:
    return PresetList(presets=[{"name": name, **body} for name, body in list_presets().items()])
