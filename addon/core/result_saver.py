"""Saving a job's result PNGs in the background, after its pixels were handed over — no bpy.

Protocol 1.1 announces a job's results (``ready``) before the backend has encoded their PNGs; the
add-on takes the pixels at once (``core.remote_job.run_job``) and lets a :class:`ResultSaver` thread
follow the job to ``done``, download the PNGs (the backend's own bytes: their text chunks hold the
prompt, seed and model) and write them atomically, while the feature projects the pixels or starts
the next view's job. Its caller learns how the save went from :meth:`ResultSaver.wait`, which raises
the saver's error (with its fix), so a failed save is never lost.

When it runs follows Blender's rule for Python threads ("only while the main thread is blocked",
docs.blender.org, "Python Threads are Not Supported"): a saver is not started at ``ready`` but
*deferred* (:meth:`ResultSaver.defer`); the next ``run_job`` starts the deferred savers once its own
job is submitted (:func:`start_deferred`) and joins them before it returns (:func:`join`), so they run
while that thread waits on the network, never while Blender's main thread renders the next view's
passes; ``wait`` on a saver nobody started runs it right there, in the caller's thread. A crash inside
bpy was seen with a saver thread downloading while the main thread evaluated the depsgraph.

The thread follows the job by polling ``GET /v1/jobs/{id}`` (a few requests over the ~0.2 s the
backend takes to write a 1024² PNG) because only polling can be stopped at any moment: a saver ends
when the job is done and its files are written, on an error, at the run's deadline, or when
:meth:`ResultSaver.stop` is called (a cancelled or failed feature). The run's cancel event does not
stop it: the job had finished, and a frame sequence cancelled during the next frame keeps this one.
Files are written one by one with ``write_atomic``: a stopped saver leaves whole files or none.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Protocol

from .errors import BackendUnavailable, JobCancelled, JobFailed, ScenecastError, WaitTimeout
from .files import write_atomic
from .job_events import TERMINAL

#: Seconds between status polls: the first soon (a small PNG is written in milliseconds), then
#: growing by half to at most ``POLL_MAX`` (a 1024² one takes ~0.15 s); loopback only, so cheap.
POLL_FIRST, POLL_MAX = 0.01, 0.05


_deferred: list[ResultSaver] = []  # made at ``ready``, waiting for the next job's network wait
_deferred_lock = threading.Lock()


def start_deferred() -> list[ResultSaver]:
    """Start every deferred saver (see the module doc); the caller joins them with :func:`join`."""
    with _deferred_lock:
        savers = list(_deferred)
        _deferred.clear()
    return [saver.start() for saver in savers if not saver.stopped]


def join(savers: list[ResultSaver]) -> None:
    """Wait until ``savers`` have ended (their errors stay for ``wait``)."""
    for saver in savers:
        saver.join()


class _Paused(ScenecastError):
    """Inside the thread only (never raised to a caller): ``join`` asked it to stop following; it is
    deferred again. A ScenecastError like every exception of the add-on (tests/addon_core/test_errors)."""

    default_fix = "nothing to do: the save goes on with the next job, or when its files are waited for"


class SaverClient(Protocol):
    """What the saver needs of ``core.client.BackendClient``."""

    def status(self, job_id: str) -> dict[str, Any]: ...

    def result(self, job_id: str, index: int) -> bytes: ...


class ResultSaver:
    """One job's result PNGs written to ``paths`` (result ``n`` to ``paths[n]``) by a worker thread.

    ``deadline``: ``time.monotonic()`` value after which it gives up (the request's timeout), or None."""

    def __init__(self, client: SaverClient, job_id: str, paths: list[str], deadline: float | None = None) -> None:
        self.client, self.job_id, self.paths = client, job_id, list(paths)
        self.deadline = deadline
        self.final: dict[str, Any] | None = None  # the job's final status once the files are written
        self.error: BaseException | None = None
        self._stop = threading.Event()
        # Not a daemon: a script that ends right after run_job still gets its files (the interpreter
        # joins the thread at exit; every step is bounded by the client's HTTP timeout).
        self._thread = self._new_thread()
        self._pause = threading.Event()  # set by join(): stop following at a safe point, to resume later

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self._run, name=f"scenecast-save-{self.job_id[:12]}", daemon=False)

    def start(self) -> ResultSaver:
        if self._thread.ident is not None:  # ran before and was paused: a thread runs once
            self._thread = self._new_thread()
        self._pause.clear()
        self._thread.start()
        return self

    def defer(self) -> ResultSaver:
        """Leave it to the next :func:`start_deferred` (or to :meth:`wait`) to run it."""
        with _deferred_lock:
            _deferred.append(self)
        return self

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def join(self) -> None:
        """End its thread now: while it still waits for the backend's ``done`` it stops there and is
        deferred again (to go on with the next job's wait); a download under way is finished first."""
        if self._thread.ident is None:
            return
        self._pause.set()
        self._thread.join()  # a paused thread deferred its saver again before it ended

    def _undefer(self) -> bool:
        """Take it off the deferred list; True when it was there (never started)."""
        with _deferred_lock:
            if self in _deferred:
                _deferred.remove(self)
                return True
        return False

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the files are written and return the job's final status; raise what stopped
        the saver (``JobFailed``, ``JobCancelled``, ``ScenecastError`` for a disk error), or
        ``WaitTimeout`` when ``timeout`` seconds pass first (the saver goes on). A saver still deferred
        runs here, in this thread."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._undefer():
                self.start()  # its own thread, so that `timeout` holds as for a started one
            elif self._thread.ident is None:  # stopped before it ever ran
                raise self.error or JobCancelled(f"the results of job {self.job_id} were not saved",
                                                 job_id=self.job_id)
            self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                raise WaitTimeout(f"the result files of job {self.job_id} were not written within {timeout:g} s",
                                  "wait longer: the backend is still writing them")
            if self.error is not None:
                raise self.error
            if self.final is not None:
                return self.final
            # Paused meanwhile by a run_job that returned (another thread): it is deferred again; go on here.

    def stop(self) -> None:
        """Stop saving (a cancelled or failed run) and wait for the thread to end: a file being
        written is finished or not written at all, no later one is started."""
        self._stop.set()
        if self._undefer():
            self.error = JobCancelled(f"saving the results of job {self.job_id} was stopped before it began",
                                      job_id=self.job_id)
        if self._thread.ident is not None:
            self._thread.join()

    # ------------------------------------------------------------------------------- the thread

    def _run(self) -> None:
        try:
            final = self._follow()
            self._save()
            self.final = final
        except _Paused:
            self.defer()  # before the thread ends, so whoever joins it finds the saver deferred
        except BaseException as exc:  # noqa: BLE001 - handed to wait(), never lost in the thread
            self.error = exc

    def _check(self) -> None:
        if self._stop.is_set():
            raise JobCancelled(f"saving the results of job {self.job_id} was stopped (the run was cancelled"
                               " or failed)", job_id=self.job_id)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise WaitTimeout(f"the backend did not finish writing the results of job {self.job_id} in time",
                              "wait longer (a larger timeout), or look at the backend's log; the job's pixels"
                              " were used, only its PNG files are missing")

    def _follow(self) -> dict[str, Any]:
        """The job's final status, polled until it is terminal; ``done`` or an error."""
        pause = POLL_FIRST
        while True:
            self._check()
            try:
                state = self.client.status(self.job_id)
            except BackendUnavailable as exc:
                raise JobFailed(
                    f"the backend stopped answering before it had written the results of job {self.job_id}"
                    f" ({exc.message}); the images were used, but their PNG files were not saved",
                    "restart the backend and run again to get the files (look at its log for why it stopped)",
                    job_id=self.job_id,
                ) from exc
            if state.get("status") in TERMINAL:
                break
            if self._pause.is_set():
                raise _Paused(f"saving the results of job {self.job_id} paused until the next job")
            if self._stop.wait(pause):
                continue  # _check says why
            pause = min(POLL_MAX, pause * 1.5)
        if state.get("status") == "cancelled":
            raise JobCancelled(f"job {self.job_id} was cancelled before its results were saved", job_id=self.job_id)
        if state.get("status") != "done":  # e.g. output_error: the backend could not write its PNGs
            error = state.get("error") or {}
            raise JobFailed(
                f"job {self.job_id} made its images, but the backend could not save them:"
                f" {error.get('message') or 'no reason given'}",
                error.get("fix") or "look at the backend's log for details, then run again",
                status=str(state.get("status")), job_id=self.job_id, code=str(error.get("code") or ""),
            )
        return state

    def _save(self) -> None:
        for index, path in enumerate(self.paths):
            self._check()
            data = self.client.result(self.job_id, index)
            try:
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                write_atomic(path, data)
            except OSError as exc:
                raise ScenecastError(
                    f"could not write the result {path}: {exc.strerror or exc}",
                    "make sure the output folder is writable and has free space (Preferences › Add-ons ›"
                    " Scenecast › Output Folder), then run again",
                ) from exc
