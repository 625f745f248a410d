"""End-to-end helpers: the built extension installed into real Blender (bpy 4.2 … 5.3), a real backend process.

The add-on is installed from ``make extension``'s zip with ``package_install_files`` — the way a user
installs it — into the throwaway user folder of ``BLENDER_USER_RESOURCES`` (the Makefile sets it inside
the repo). The backend is a real ``python -m backend serve`` from ``SCENECAST_BACKEND_PYTHON`` on a free
port, offline, serving ``builtin:tiny``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADDON_MODULE = "bl_ext.user_default.scenecast"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("XDG_CACHE_HOME", str(ROOT / ".cache"))
if "bpy" not in sys.modules:  # alone (pytest tests/e2e): a fresh user dir, set before bpy reads it
    _base = Path(os.environ.get("BLENDER_USER_RESOURCES") or ROOT / ".cache" / "blender-user")
    _base.mkdir(parents=True, exist_ok=True)
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="e2e-", dir=_base)
    atexit.register(shutil.rmtree, os.environ["BLENDER_USER_RESOURCES"], ignore_errors=True)
for extra in (ROOT / "tools", ROOT / "examples"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

bpy = pytest.importorskip("bpy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_python() -> str:
    python = os.environ.get("SCENECAST_BACKEND_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    if not Path(python).is_file():
        pytest.skip("no backend Python: set SCENECAST_BACKEND_PYTHON (make test does) or run make venv")
    return python


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/v1/health", timeout=1.0) as response:
            return response.status == 200
    except OSError:
        return False


class BackendServer:
    """A real backend process on a free port, which a test may kill."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [backend_python(), "-m", "backend", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 180
        while not healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the backend did not start; its log:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


def scene_state(scene) -> dict:
    """What a failed job must leave exactly as it was: the passes code's own snapshot (engine, samples,
    passes, compositor, output, frame, ...) plus objects, selection, materials and images."""
    import importlib

    snapshot = importlib.import_module(ADDON_MODULE + ".blender.scene_state")
    r = scene.render
    compat = importlib.import_module(ADDON_MODULE + ".blender.compat")
    depsgraph = bpy.context.evaluated_depsgraph_get()  # the fixture's scene is the window's scene

    def location(o) -> tuple:  # evaluated: 4.x leaves a new object's own matrix_world stale
        return tuple(round(v, 6) for v in compat.world_matrix(o, depsgraph).col[3])

    return {
        "render_state": snapshot.capture_state(scene, scene.view_layers[0]),
        "engine": r.engine,
        "filepath": r.filepath,
        "format": r.image_settings.file_format,
        "resolution": (r.resolution_x, r.resolution_y, r.resolution_percentage),
        "frame": scene.frame_current,
        "camera": scene.camera.name if scene.camera else None,
        "objects": sorted(
            (o.name, location(o), o.hide_render, o.select_get(),
             tuple(m.name for m in o.material_slots if m) )
            for o in scene.objects
        ),
        "view_layer_passes": [
            (vl.name, vl.use_pass_z, vl.use_pass_normal, vl.use_pass_object_index) for vl in scene.view_layers
        ],
        "images": sorted(i.name for i in bpy.data.images),
        "materials": sorted(m.name for m in bpy.data.materials),
    }
