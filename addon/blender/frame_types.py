"""The plain data of a frame-sequence run (``blender.frame_run``): its options, one frame's task
between ``next_task`` and ``complete``, and what a run leaves. Re-exported by ``frame_run``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..core import frame_sequence as seq
from ..core.remote_job import JobRequest
from .extract import Passes


@dataclass
class FrameOptions:
    """How later frames follow earlier ones; see the module doc. Strengths 0..1, ``dilate_px`` pixels,
    ``depth_tolerance`` relative (0.05 = 5 % of the planar depth)."""

    consistency: bool = True
    hole_strength: float = 1.0
    refresh_strength: float = 0.3
    dilate_px: int = 2
    depth_tolerance: float = 0.05
    # Also a hole where another object is at the same depth (e.g. road against sidewalk): off, since the
    # previous output already blends such edges the same way; on, every object border is repainted.
    object_ids: bool = False
    restart: bool = False  # redo every frame of the range (an earlier run's settings are ignored)

    def check(self) -> None:
        for name in ("hole_strength", "refresh_strength"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} {value} is outside 0..1: set it between 0 (skip) and 1 (repaint fully)")
        if self.dilate_px < 0 or self.dilate_px > 64:
            raise ValueError(f"dilate_px {self.dilate_px} is outside 0..64 pixels")
        if not 0.0 < self.depth_tolerance < 1.0:
            raise ValueError(f"depth_tolerance {self.depth_tolerance} is outside (0, 1): e.g. 0.05 for 5 %")


@dataclass
class FrameTask:
    """One frame's work between ``next_task`` and ``complete``; ``request`` None: no job is needed
    (the warped frame is the output)."""

    frame: int
    mode: str  # "generate" | "inpaint+refresh" | "inpaint" | "refresh" | "warp"
    request: JobRequest | None
    step: seq.WarpStep | None
    passes: Passes
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)


@dataclass
class FramesResult:
    """What a run left: every frame file of the range, the record, and which frames this run made."""

    files: list[str]
    made: list[int]
    skipped: list[int]
    record_path: str
    record: dict[str, Any]
