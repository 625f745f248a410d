"""Errors the model layer raises. Each carries ``message`` (what is wrong) and ``fix`` (what to do), so
the server can answer a 4xx that tells the user their next step instead of a stack trace."""

from __future__ import annotations


class Cancelled(Exception):
    """The job was cancelled while a model was being fetched or loaded (the pipelines' JobCancelled is one)."""


class ModelError(Exception):
    """Base class: something about a model (or the device it runs on) stops the job."""

    code = "model_error"

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(f"{message} — {fix}")
        self.message = message
        self.fix = fix


class ModelNotFound(ModelError):
    """The id names nothing we can load: not installed, not a file, not a known builtin."""

    code = "model_not_found"


class UnsafeCheckpoint(ModelError):
    """A pickle-format checkpoint (.ckpt .pt .pth .bin): loading it can run arbitrary code."""

    code = "unsafe_checkpoint"


class DeviceUnavailable(ModelError):
    """The requested device (cuda, mps) is not present; we never fall back to the CPU silently."""

    code = "device_unavailable"


class UnsupportedModel(ModelError):
    """The model exists and is safe but is not something this backend runs (e.g. SD2, a ControlNet type
    with no default for the family)."""

    code = "unsupported_model"
