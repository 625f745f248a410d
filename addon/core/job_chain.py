"""Features made of several backend jobs (multi-view texturing), as generators one driver runs.

A feature is written once as a generator: it does its main-thread work (render passes, project an
image), ``yield``s the :class:`~.remote_job.JobRequest` of the next job, receives that job's
:class:`~.remote_job.JobOutcome` back and carries on; its ``return`` value is the feature's result.
:func:`run_blocking` drives it in the caller's thread (the scripting API, ``blender -b``); the UI
drives the same generator from a modal operator, running each job in a worker thread
(``ui.job_runner``) and sending the outcome in on the main thread. Cancelling closes the generator,
so its ``finally`` blocks (temporary cameras, scene state) run either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from .remote_job import JobCancelled, JobOutcome, JobRequest, run_job

T = TypeVar("T")
#: A multi-job feature: yields requests, is sent their outcomes, returns its result.
JobSteps = Generator[JobRequest, JobOutcome, T]


def run_blocking(
    steps: JobSteps[T],
    on_event: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    on_status: Callable[[str], None] | None = None,
    runner: Callable[..., JobOutcome] = run_job,
    check: Callable[[], None] | None = None,
) -> T:
    """Run every job of ``steps`` in this thread and return the generator's result.

    ``cancel`` set (from another thread) cancels the running job on the server and stops the
    feature; :class:`JobFailed` (status "cancelled") is raised after the generator has cleaned up.
    Any error from a job is thrown into the generator, so it can clean up (or handle it) there.
    ``check`` (e.g. "the scene still exists") runs before each outcome goes back in; what it raises
    is thrown into the generator the same way.
    """
    try:
        request = next(steps)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    while True:
        if cancel is not None and cancel.is_set():
            steps.close()
            raise JobCancelled("cancelled between jobs")
        try:
            outcome = runner(request, on_event=on_event, cancel=cancel, on_status=on_status)
            if check is not None:
                check()
        except BaseException as exc:
            try:
                request = steps.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            continue
        try:
            request = steps.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
