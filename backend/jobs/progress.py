"""The :class:`~backend.pipelines.interface.Progress` the worker hands to the pipeline: it turns
callbacks into job state and events."""

from __future__ import annotations

import numpy as np

from ..pipelines.interface import JobCancelled
from .outputs import encode_png
from .record import Job


class JobProgress:
    def __init__(self, job: Job) -> None:
        self.job = job

    def stage(self, index: int, type: str, steps: int) -> None:
        self.job.stage, self.job.step, self.job.steps = index, 0, steps
        self.job.events.append("stage", index=index, stage=type, steps=steps)

    def step(self, step: int, total: int) -> None:
        self.job.step, self.job.steps = step, total
        self.job.events.append("step", stage=self.job.stage, step=step, steps=total)

    def preview(self, step: int, image: np.ndarray) -> None:
        # Fastest compression that still compresses: previews are transient and encode on the denoising thread.
        png = encode_png(np.ascontiguousarray(image, dtype=np.uint8), compress_level=1)
        self.job.events.append("preview", png=png, stage=self.job.stage, step=step,
                               width=int(image.shape[1]), height=int(image.shape[0]))

    def download(self, model: str, done_bytes: int, total_bytes: int | None) -> None:
        if self.cancelled():  # raised through the download's progress bar, so a multi-GB fetch stops too
            raise JobCancelled()
        self.job.events.append("download", model=model, done=done_bytes, total=total_bytes)

    def cancelled(self) -> bool:
        return self.job.cancel_requested.is_set()
