"""Step gates, for tests only: hold a running job right after a chosen step until the test lets it go.

Tests wait on events they control, never on a job being "slow enough" or on the clock. A gate holds a
job right after it reports step N (the ``step`` event is out; the next step has not begun) until the
test releases it, or until the job is cancelled (so a cancel, a shutdown or a test that forgets its
gate never hangs the worker). While a job is held the one worker is busy, so jobs submitted meanwhile
stay queued behind it: positions, queued cancels, FIFO order and mid-job cancels are checked without
races.

Two kinds, one mechanism (:func:`gated` wraps the runner a ``JobQueue`` calls):

- In process (a ``JobQueue`` in the test's own process): :class:`EventGate`, with threading Events.
- A server process: ``serve --test-gates DIR``, refused unless ``SCENECAST_TEST_GATES=1`` is in the
  environment (see ``cli.py``; without the flag nothing here is imported). A job whose ``name`` or
  job-level ``prompt`` contains ``[test-gate:ID@N]`` is held after step N: the server writes
  ``DIR/ID.held`` (holding N) when it holds, and lets the job go once ``DIR/ID.release`` exists.
  ``tests/backend/_server.py`` has the test's side (``Server.gate()``).

This module imports only the standard library, so the CLI can check the flag before loading torch.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

if TYPE_CHECKING:
    from ..spec import JobSpec

GATE_ENV = "SCENECAST_TEST_GATES"
"""Must be ``1`` for ``serve --test-gates`` to start: only the test suite sets it."""

MARK = re.compile(r"\[test-gate:([A-Za-z0-9_-]{1,64})@([0-9]{1,4})\]")
POLL_S = 0.005  # how often a held job looks for its release or a cancel (no test depends on it)


def allowed(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(GATE_ENV) == "1"


class Gate(Protocol):
    step: int

    def hold(self, cancelled: Callable[[], bool]) -> None:
        """Block the job's thread until released or ``cancelled()``."""


class EventGate:
    """In-process gate: ``held`` is set once the job waits at ``step``; ``release()`` lets it go."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.held = threading.Event()
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    def hold(self, cancelled: Callable[[], bool]) -> None:
        self.held.set()
        while not self.released.wait(POLL_S):
            if cancelled():
                return


class FileGate:
    """Server-side gate: ``DIR/ID.held`` says it holds; ``DIR/ID.release`` (made by the test) lets it go."""

    def __init__(self, directory: Path, gate_id: str, step: int) -> None:
        self.step = step
        self.held_file = directory / f"{gate_id}.held"
        self.release_file = directory / f"{gate_id}.release"

    def hold(self, cancelled: Callable[[], bool]) -> None:
        part = self.held_file.with_name(self.held_file.name + ".part")
        part.write_text(str(self.step))
        os.replace(part, self.held_file)  # the test never sees a half-written file
        while not self.release_file.exists():
            if cancelled():
                return
            time.sleep(POLL_S)


class FileGates:
    """The gate a spec asks for with ``[test-gate:ID@N]`` in its name or prompt, or None."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def __call__(self, spec: JobSpec) -> Gate | None:
        for text in (spec.name, spec.prompt):
            match = MARK.search(text or "")
            if match:
                return FileGate(self.directory, match.group(1), int(match.group(2)))
        return None


class GatedProgress:
    """The job's Progress, except that the first report of ``gate.step`` holds the job at the gate."""

    def __init__(self, inner: Any, gate: Gate) -> None:
        self._inner, self._gate, self._passed = inner, gate, False

    def stage(self, index: int, type: str, steps: int) -> None:
        self._inner.stage(index, type, steps)

    def step(self, step: int, total: int) -> None:
        self._inner.step(step, total)
        if step == self._gate.step and not self._passed:
            self._passed = True
            self._gate.hold(self._inner.cancelled)

    def preview(self, step: int, image: Any) -> None:
        self._inner.preview(step, image)

    def download(self, model: str, done_bytes: int, total_bytes: int | None) -> None:
        self._inner.download(model, done_bytes, total_bytes)

    def cancelled(self) -> bool:
        return bool(self._inner.cancelled())


def gated(runner: Callable[..., Any], gate_for: Callable[[JobSpec], Gate | None]) -> Callable[..., Any]:
    """``runner`` (as ``JobQueue`` calls it), with the job held at the gate ``gate_for(spec)`` names."""

    def run(spec: JobSpec, images: Any, models: Any, progress: Any) -> Any:
        gate = gate_for(spec)
        return runner(spec, images, models, progress if gate is None else GatedProgress(progress, gate))

    return run
