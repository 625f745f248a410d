"""Response bodies, as pydantic models so the OpenAPI document describes the real answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..spec import MAX_SIDE


class ErrorDetail(BaseModel):
    code: str
    message: str = Field(description="what is wrong")
    fix: str | None = Field(description="what to do about it")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    protocol: int
    device: str
    dtype: str
    queue: int = Field(description="jobs waiting, not counting the running one")
    running: str | None = Field(description="id of the running job")
    image_formats: list[str] = Field(default=["image/png", "image/x-scenecast-pixels"],
                                     description="media types accepted for input images and offered for results")
    client_job_ids: bool = Field(default=True, description="PUT /v1/jobs/{id} accepts an id the client chose")
    max_side: int = Field(default=MAX_SIDE, description="the longest image side a job may ask for, pixels")
    memory_mode: str = Field("auto", description="the memory mode asked for (serve --memory-mode): auto, full, fp8, "
                             "offload, fp8-offload or group-offload (docs/models.md, 'Memory modes')")
    dtypes: dict[str, str] = Field(default_factory=dict, description="compute dtype per model family")
    free_device_gb: float | None = Field(None, description="free GPU memory now; null on CPU/MPS")
    memory_plans: dict[str, Any] = Field(default_factory=dict,
                                         description="the memory plan of each loaded base model, by id")


class ModelList(BaseModel):
    models: list[dict[str, Any]]


class ImageUploaded(BaseModel):
    id: str = Field(description="sha256:<hex> of the PNG bytes; name it as an image key in a job spec")


class JobAccepted(BaseModel):
    id: str
    status: Literal["queued"]
    position: int = Field(description="jobs ahead of this one, the running one included")


class ResultRef(BaseModel):
    index: int
    url: str
    width: int
    height: int
    sha256: str = Field(description="of the PNG file's bytes")


class JobStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    position: int | None = Field(description="while queued: jobs ahead of this one")
    stage: int | None
    step: int | None
    steps: int | None
    error: ErrorDetail | None
    results: list[ResultRef]
    record_url: str | None
    created: float = Field(description="unix time the job was accepted")
    started: float | None = Field(description="unix time it started running")
    finished: float | None = Field(description="unix time it ended")


class JobCancelAnswer(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]


class PresetList(BaseModel):
    presets: list[dict[str, Any]]


ERRORS = {400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 404: {"model": ErrorBody},
          422: {"model": ErrorBody}}
