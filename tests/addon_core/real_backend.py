"""The real backend (``python -m backend serve`` on ``builtin:tiny``) for the add-on's core tests.

The add-on's tests run in Blender's Python (bpy, numpy; no torch, no PIL), the backend needs its own
virtual environment. So the server is started by a small launcher running in the backend's Python
(``$SCENECAST_BACKEND_PYTHON``, else the checkout's ``.venv``), which uses the backend tests' own
``tests/backend/_server.py`` (free port on 127.0.0.1, CPU, offline, its own data folder) and prints
the URL; closing the launcher's stdin stops the server. One server is shared by every test module of
a session (importing torch takes seconds); tests that need none of that skip with the reason.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_LAUNCHER = """
import json, sys
sys.path.insert(0, "tests/backend")
import _server
server = _server.start_server(token=sys.argv[1] or None)
print(json.dumps({"url": server.url, "pid": server.proc.pid, "log": str(server.log)}), flush=True)
try:
    sys.stdin.read()
finally:
    server.stop()
"""


@dataclass
class RealBackend:
    url: str
    token: str
    log: str
    launcher: subprocess.Popen
    pid: int

    def stop(self) -> None:
        if self.launcher.poll() is None:
            assert self.launcher.stdin is not None
            self.launcher.stdin.close()  # the launcher stops the server, then exits
            try:
                self.launcher.wait(30)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
                self.launcher.wait()


def backend_python() -> str | None:
    """The backend's Python, or None when this machine has none (the caller skips)."""
    for candidate in (os.environ.get("SCENECAST_BACKEND_PYTHON", ""), str(ROOT / ".venv" / "bin" / "python")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


_shared: dict[str, RealBackend] = {}


def real_backend(token: str = "") -> RealBackend:
    """The session's real backend (started on first use, stopped at exit); skips without one."""
    backend = _shared.get(token)
    if backend is not None and backend.launcher.poll() is None:
        return backend
    python = backend_python()
    if python is None:
        pytest.skip("no backend Python: set SCENECAST_BACKEND_PYTHON to the backend venv's python"
                    " (make venv creates .venv)")
    launcher = subprocess.Popen([python, "-c", _LAUNCHER, token], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=dict(os.environ, HF_HUB_OFFLINE="1"), text=True)
    assert launcher.stdout is not None
    line = launcher.stdout.readline()  # blocks until the server answers /v1/health, or the launcher fails
    if not line:
        launcher.wait()
        raise RuntimeError(f"the backend launcher exited with {launcher.returncode} (its stderr is above)")
    info = json.loads(line)
    backend = RealBackend(url=info["url"], token=token, log=info["log"], launcher=launcher, pid=info["pid"])
    _shared[token] = backend
    atexit.register(backend.stop)
    return backend
