"""Real Blender (bpy 4.2 LTS, 4.5 LTS, 5.0 or 5.3) with the Scenecast extension installed the way a user does.

Session: build ``scenecast-<version>.zip`` with ``tools/build_extension.py`` (Blender's own builder)
into a temp dir, and install it with ``bpy.ops.extensions.package_install_files`` into a throwaway
Blender user dir (a fresh folder under ``$BLENDER_USER_RESOURCES``, set before bpy is imported).
The ``scenecast`` fixture is the installed module ``bl_ext.user_default.scenecast``; the
``empty_scene`` fixture gives each test an empty factory-startup scene.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION_MODULE = "bl_ext.user_default.scenecast"

# A throwaway user dir, before bpy reads its environment. Makefile's TEST_ENV points the base inside
# the repo (.cache/blender-user); each session installs into a fresh folder below it.
# Whichever of this file and tests/e2e/e2e_support.py loads first makes the folder (bpy reads the
# variable once, on import); the other one uses it.
if "bpy" not in sys.modules:
    _USER_BASE = Path(os.environ.get("BLENDER_USER_RESOURCES") or ROOT / ".cache" / "blender-user")
    _USER_BASE.mkdir(parents=True, exist_ok=True)
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="session-", dir=_USER_BASE)
    atexit.register(shutil.rmtree, os.environ["BLENDER_USER_RESOURCES"], ignore_errors=True)  # also when a fixture failed
_USER_DIR = Path(os.environ["BLENDER_USER_RESOURCES"])

import bpy  # noqa: E402  (after the environment is set)


def _bundled_site_packages() -> None:
    """Put Blender's bundled site-packages on sys.path, as the Blender application has it.

    The bpy 4.5+ wheels keep ``OpenImageIO`` there without adding the folder to ``sys.path``; the
    4.2 wheel ships none, so its tests exercise the numpy EXR reader and the others the OpenImageIO one.
    """
    folder = Path(bpy.__file__).resolve().parents[3] / "python" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.append(str(folder))


_bundled_site_packages()


def pytest_report_header(config: pytest.Config) -> str:
    return f"Blender (bpy) {bpy.app.version_string}, user dir {_USER_DIR}"


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension zip, built and validated by Blender's extension builder."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import build_extension
    finally:
        sys.path.remove(str(ROOT / "tools"))
    out = tmp_path_factory.mktemp("dist")
    # as `make extension` builds it: with the backend's wheel for Install Backend, when the backend venv is known
    return build_extension.build(out, out / "staging",
                                 backend_wheel_python=os.environ.get("SCENECAST_BACKEND_PYTHON", ""))


@pytest.fixture(scope="session")
def scenecast(extension_zip: Path) -> Iterator[ModuleType]:
    """``bl_ext.user_default.scenecast``, installed from the zip and enabled (registered)."""
    if EXTENSION_MODULE not in bpy.context.preferences.addons:  # tests/e2e may have installed it already
        result = bpy.ops.extensions.package_install_files(
            repo="user_default", filepath=str(extension_zip), enable_on_install=True
        )
        assert result == {"FINISHED"}, f"installing {extension_zip} failed: {result}"
    assert EXTENSION_MODULE in bpy.context.preferences.addons, "the extension installed but is not enabled"
    module = importlib.import_module(EXTENSION_MODULE)
    assert Path(module.__file__).resolve().is_relative_to(_USER_DIR.resolve())
    yield module
    import addon_utils

    addon_utils.disable(EXTENSION_MODULE)


@pytest.fixture
def empty_scene(scenecast: ModuleType) -> bpy.types.Scene:
    """An empty scene from the factory startup file (preferences, so the extension, stay as they are)."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    return bpy.context.scene


@pytest.fixture
def sc_module(scenecast: ModuleType):
    """``importlib.import_module`` relative to the installed extension: ``sc_module("blender.passes")``."""
    return lambda name: importlib.import_module(f"{EXTENSION_MODULE}.{name}")
