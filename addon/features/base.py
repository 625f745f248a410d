"""What every feature hands to a driver: a generator of jobs, the names it holds, its progress.

A feature is a generator (``core.job_chain.JobSteps``): on the main thread it does its Blender work
(render passes, project an image, write a frame), ``yield``s the next :class:`JobRequest`, is sent
that job's :class:`JobOutcome` and carries on; its ``return`` value is the result. It holds Blender
data by name only (:class:`~..blender.held.Held`) across each ``yield``. Two drivers run it:
``api`` blocking (:func:`run_blocking`) and the UI's one job operator modally (``ui.job_operator``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..blender.held import Held
from ..core import job_chain
from ..core.job_chain import JobSteps
from ..core.remote_job import JobOutcome, run_job

T = TypeVar("T")


@dataclass
class Progress:
    """Where a run is: ``unit`` ("view", "frame" or "" for single-job features) ``index`` of ``count``
    (0-based) and what it does now (``phase``). Features set it; drivers show it."""

    unit: str = ""
    index: int = 0
    count: int = 1
    phase: str = ""
    listeners: list[Callable[[Progress], None]] = field(default_factory=list)

    def set(self, index: int, count: int, phase: str, unit: str | None = None) -> None:
        self.index, self.count, self.phase = index, max(1, count), phase
        if unit is not None:
            self.unit = unit
        for listener in self.listeners:
            listener(self)

    @property
    def text(self) -> str:
        """E.g. "view 2/6: generating" (or just the phase for a single job)."""
        if not self.unit:
            return self.phase
        return f"{self.unit} {self.index + 1}/{self.count}" + (f": {self.phase}" if self.phase else "")

    def fraction(self, within: float = 0.0) -> float:
        """0..1 of the whole run, ``within`` (0..1) being the part of the current unit done."""
        return min(1.0, max(0.0, (self.index + min(max(within, 0.0), 1.0)) / max(self.count, 1)))


@dataclass
class FeatureRun(Generic[T]):
    """One run of a feature: ``steps`` (the generator), ``held`` (names checked each tick),
    ``progress``, ``label`` (names the run in the status bar and the undo history) and ``notes``
    (what the user should know, e.g. "the model came from the offline cache"; drivers show them)."""

    label: str
    steps: JobSteps[T]
    held: Held
    progress: Progress = field(default_factory=Progress)
    notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        self.held.check()


def run_blocking(
    run: FeatureRun[T],
    on_event: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    on_status: Callable[[str], None] | None = None,
    runner: Callable[..., JobOutcome] = run_job,
) -> T:
    """Run every job of ``run`` in this thread (see ``core.job_chain.run_blocking``); the held data
    is checked before each job's outcome goes back into the feature."""
    return job_chain.run_blocking(run.steps, on_event=on_event, cancel=cancel, on_status=on_status, runner=runner,
                                  check=run.check)
