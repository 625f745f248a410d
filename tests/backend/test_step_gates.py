"""The test-only step gates (backend/testing/gates.py) hold where they say, let go when told or cancelled,
and cannot be switched on in a production start."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from _server import ROOT, free_port
from backend.testing.gates import GATE_ENV, EventGate, FileGates, GatedProgress, gated


class Recorder:
    def __init__(self) -> None:
        self.steps: list[int] = []
        self.cancel = threading.Event()

    def stage(self, index: int, type: str, steps: int) -> None: ...

    def step(self, step: int, total: int) -> None:
        self.steps.append(step)

    def preview(self, step: int, image: object) -> None: ...

    def download(self, model: str, done_bytes: int, total_bytes: int | None) -> None: ...

    def cancelled(self) -> bool:
        return self.cancel.is_set()


def run_steps(progress: GatedProgress, total: int) -> None:
    for i in range(1, total + 1):
        if progress.cancelled():
            return
        progress.step(i, total)


def test_a_job_waits_after_its_step_until_released():
    gate, inner = EventGate(step=2), Recorder()
    worker = threading.Thread(target=run_steps, args=(GatedProgress(inner, gate), 4))
    worker.start()
    assert gate.held.wait(30)
    assert inner.steps == [1, 2]  # the step's report is out; the next step has not begun
    worker.join(0.2)  # still held (were it not, the four steps would be done long before)
    assert worker.is_alive() and inner.steps == [1, 2]
    gate.release()
    worker.join(30)
    assert not worker.is_alive() and inner.steps == [1, 2, 3, 4]


def test_a_cancel_lets_a_held_job_go():
    gate, inner = EventGate(step=1), Recorder()
    worker = threading.Thread(target=run_steps, args=(GatedProgress(inner, gate), 4))
    worker.start()
    assert gate.held.wait(30)
    inner.cancel.set()  # never released: only the cancel can end the wait
    worker.join(30)
    assert not worker.is_alive() and inner.steps == [1]


def test_file_gates_follow_the_mark_in_the_name_or_prompt(tmp_path):
    from backend.spec import JobSpec

    def spec(**over: object) -> JobSpec:
        return JobSpec.model_validate({"model": "builtin:tiny", "prompt": "p", "width": 64, "height": 64, "steps": 3,
                                       "stages": [{"type": "generate"}], **over})

    gates = FileGates(tmp_path)
    assert gates(spec()) is None and gates(spec(name="[test-gate:x]")) is None
    gate = gates(spec(name="shot 3 [test-gate:abc@2]"))
    assert gate is not None and gate.step == 2
    assert gates(spec(prompt="a wall [test-gate:p1@1]")).step == 1  # A1111 requests carry no name

    inner = Recorder()
    seen: list[GatedProgress] = []
    runner = gated(lambda s, images, models, progress: (seen.append(progress), run_steps(progress, 3)),
                   gates)
    worker = threading.Thread(target=runner, args=(spec(name="[test-gate:abc@2]"), {}, None, inner))
    worker.start()
    held = tmp_path / "abc.held"
    for _ in range(3000):  # the timeout only bounds a failure
        if held.exists():
            break
        worker.join(0.01)
    assert held.read_text() == "2" and inner.steps == [1, 2] and worker.is_alive()
    (tmp_path / "abc.release").touch()
    worker.join(30)
    assert inner.steps == [1, 2, 3]
    runner(spec(), {}, None, plain := Recorder())  # no mark: the progress is handed on untouched
    assert seen[-1] is plain


@pytest.mark.parametrize("value", [None, "0", "yes"])
def test_serve_refuses_test_gates_unless_the_test_suite_allows_them(tmp_path, value):
    env = dict(os.environ, HF_HUB_OFFLINE="1", SCENECAST_DATA=str(tmp_path / "data"))
    env.pop(GATE_ENV, None)
    if value is not None:
        env[GATE_ENV] = value
    gates = tmp_path / "gates"
    proc = subprocess.run([sys.executable, "-m", "backend", "serve", "--port", str(free_port()), "--test-gates",
                           str(gates)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--test-gates is for Scenecast's own test suite" in proc.stderr and "fix:" in proc.stderr
    assert not gates.exists() and not (tmp_path / "data").exists()


def test_the_flag_is_not_in_the_help():
    proc = subprocess.run([sys.executable, "-m", "backend", "serve", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "--token" in proc.stdout and "test-gates" not in proc.stdout
