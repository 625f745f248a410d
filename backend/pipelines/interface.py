"""The contract between ``jobs/`` (which runs jobs) and ``pipelines/`` (which runs stages).

``jobs`` calls :func:`backend.pipelines.run_job` with a validated spec, the decoded input images and a
:class:`Progress` it implements; the pipeline reports through it and polls ``cancelled()`` between
denoising steps, raising :class:`JobCancelled` so that cancel takes effect within one step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..models.errors import Cancelled


class JobCancelled(Cancelled):
    """Raised inside the pipeline when ``Progress.cancelled()`` turned true."""


class Progress(Protocol):
    def stage(self, index: int, type: str, steps: int) -> None:
        """Stage ``index`` (0-based) of the spec starts; it will take ``steps`` denoising steps."""

    def step(self, step: int, total: int) -> None:
        """Denoising step ``step`` (1-based) of ``total`` in the current stage finished."""

    def preview(self, step: int, image: np.ndarray) -> None:
        """A preview after ``step``: H x W x 3 uint8 sRGB, row 0 at the top (may be smaller than the output)."""

    def download(self, model: str, done_bytes: int, total_bytes: int | None) -> None:
        """A model is being fetched from the hub."""

    def cancelled(self) -> bool:
        """True once the job should stop; the pipeline then raises JobCancelled."""


@dataclass
class JobResult:
    """What a job produced: the last stage's images and what is needed to reproduce them."""

    images: list[np.ndarray]  # H x W x 3 uint8 sRGB, row 0 at the top
    info: dict[str, Any] = field(default_factory=dict)  # device, dtype, resolved per-stage params, model ids
