"""The extension zip as Blender builds it, and the add-on as Blender installs it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parents[2]


def test_zip_holds_the_addon_package_and_nothing_else(extension_zip):
    assert extension_zip.name == "scenecast-0.1.0.zip"
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    for module in ("core/conventions.py", "blender/passes.py", "blender/extract.py", "blender/scene_state.py"):
        assert module in names
    assert not [n for n in names if n.startswith(("backend/", "tests/", "tools/", "addon/", "dist/"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    presets = sorted(p.name for p in (ROOT / "presets").glob("*.json"))
    assert sorted(n.removeprefix("presets/") for n in names if n.startswith("presets/")) == presets


def test_manifest_declares_what_the_addon_uses(extension_zip):
    manifest = tomllib.loads(zipfile.ZipFile(extension_zip).read("blender_manifest.toml").decode())
    assert manifest["id"] == "scenecast" and manifest["type"] == "add-on"
    assert manifest["schema_version"] == "1.0.0" and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    assert all(license.startswith("SPDX:") for license in manifest["license"])


def test_installed_extension_is_enabled_from_the_user_dir(scenecast):
    assert scenecast.__name__ == "bl_ext.user_default.scenecast"
    assert "bl_ext.user_default.scenecast" in bpy.context.preferences.addons
    assert Path(scenecast.__file__).parent.name == "scenecast"
    assert callable(scenecast.register) and callable(scenecast.unregister)


def test_package_imports_without_bpy():
    """``addon`` and ``addon.core`` load in plain Python: bpy is only imported by register()."""
    code = "import sys, addon, addon.core.conventions; assert 'bpy' not in sys.modules, 'bpy imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
