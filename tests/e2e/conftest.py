"""End-to-end fixtures: the installed extension, real backend processes, a fresh blockout scene.

Run on every Blender ``make test`` covers (4.2, 4.5, 5.0, 5.3): each version builds the zip with its
own extension builder and installs it into this run's ``BLENDER_USER_RESOURCES``.

Helpers (and why the add-on is installed from the zip) are in ``e2e_support.py``.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_support import ADDON_MODULE, BackendServer, bpy  # noqa: E402

@pytest.fixture(scope="session")
def scenecast_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import build_extension

    base = tmp_path_factory.mktemp("extension")
    return build_extension.build(base / "dist", base / "staging")


@pytest.fixture(scope="session")
def scenecast(scenecast_zip: Path) -> ModuleType:
    """The installed, enabled add-on package ``bl_ext.user_default.scenecast``."""
    if ADDON_MODULE not in bpy.context.preferences.addons:
        result = bpy.ops.extensions.package_install_files(
            filepath=str(scenecast_zip), repo="user_default", enable_on_install=True
        )
        assert result == {"FINISHED"}, result
    assert ADDON_MODULE in bpy.context.preferences.addons, "the extension did not enable"
    module = importlib.import_module(ADDON_MODULE)
    # Installed from the zip into this run's user folder, never imported from the source tree.
    user_dir = Path(os.environ["BLENDER_USER_RESOURCES"]).resolve()
    assert Path(module.__file__).resolve().is_relative_to(user_dir), (module.__file__, user_dir)
    return module


@pytest.fixture(scope="session")
def api(scenecast: ModuleType) -> ModuleType:
    return importlib.import_module(ADDON_MODULE + ".api")


@pytest.fixture
def prefs(scenecast: ModuleType) -> Iterator:
    """The add-on preferences, restored after the test."""
    p = bpy.context.preferences.addons[ADDON_MODULE].preferences
    names = ("server_url", "token", "backend_python", "backend_dir", "auto_start", "output_dir", "default_model")
    saved = {n: getattr(p, n) for n in names}
    yield p
    p = bpy.context.preferences.addons[ADDON_MODULE].preferences  # anew: a test may re-enable the add-on
    for n, v in saved.items():
        setattr(p, n, v)


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    """One backend for the whole session: starting one costs ~20 s of the 2-core CI machine, and no
    test changes its state (a test that kills its backend takes ``own_backend``)."""
    server = BackendServer(tmp_path_factory.mktemp("backend") / "backend.log")
    yield server
    server.stop()


@pytest.fixture
def own_backend(tmp_path: Path) -> Iterator[BackendServer]:
    """A backend for one test alone (to kill it)."""
    server = BackendServer(tmp_path / "backend.log")
    yield server
    server.stop()


@pytest.fixture
def scene(scenecast: ModuleType, tmp_path: Path) -> Iterator:
    """A fresh blockout scene (the demo's), removed afterwards; results go to ``tmp_path``."""
    import blockout_scene

    s = blockout_scene.build(f"E2E {os.getpid()}-{time.monotonic_ns()}", resolution=(64, 64))
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    old_out = prefs.output_dir
    prefs.output_dir = str(tmp_path / "results")
    yield s
    # Fetched anew: a test may disable and re-enable the add-on, which frees the old preferences
    # (writing through the old reference is a use-after-free: it crashed bpy 5.3 now and then).
    bpy.context.preferences.addons[ADDON_MODULE].preferences.output_dir = old_out
    objects = list(s.objects)
    bpy.data.scenes.remove(s)
    for obj in objects:
        bpy.data.objects.remove(obj)


