"""One "Blender session" as far as the backend is concerned: the add-on core's backend_process and
remote_job, run in a process of its own so that tests can have two of them, and kill one.

Commands (argv[1]):
- ``start URL STATE_DIR``: ensure_backend(URL) with its owner file in STATE_DIR; prints
  ``ready <backend url> <backend pid>``, then waits for a line on stdin and exits normally (atexit:
  the add-on's exit path), or sleeps until it is killed.
- ``job URL STATE_DIR STEPS``: runs a builtin:tiny job through remote_job.run_job (auto-start off),
  prints ``running`` at its first step and ``done <status>`` at the end, then exits normally.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from addon.core import backend_process, png, remote_job  # noqa: E402


def say(line: str) -> None:
    print(line, flush=True)


def start(url: str, state_dir: str) -> None:
    backend = backend_process.ensure_backend(url, python=os.environ["SCENECAST_BACKEND_PYTHON"],
                                             log_path=os.path.join(state_dir, "backend.log"))
    assert backend is not None
    say(f"ready {backend.url} {backend.pid} {backend.note}")
    sys.stdin.readline()


def job(url: str, state_dir: str, steps: int, out: str) -> None:
    depth = np.zeros((64, 64, 3), np.uint8)
    depth[16:48, 16:48] = 200
    req = remote_job.JobRequest(
        server=url, params=dict(prompt="a box", seed=3, steps=steps, width=64, height=64, preview_every=0),
        units=[{"image": "depth", "type": "depth", "weight": 1.0}], images={"depth": png.encode_png(depth)},
        output_dir=out, model="builtin:tiny", auto_start=False, log_path=os.path.join(state_dir, "backend.log"))
    seen = []

    def on_event(event) -> None:  # noqa: ANN001
        if event.type == "step" and not seen:
            seen.append(event)
            say("running")

    try:
        outcome = remote_job.run_job(req, on_event=on_event)
        outcome.wait_files()
        say(f"done {outcome.status.get('status')} {len(outcome.files)}")
    except Exception as exc:  # noqa: BLE001 - the test reads what happened
        say(f"failed {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    if sys.argv[1] == "start":
        start(sys.argv[2], sys.argv[3])
    else:
        job(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
