"""Install Backend as the installed extension runs it in ``blender -b`` (blocking): offline it refuses
without a wheel folder, and from a wheel folder lacking PyTorch it names the missing package, leaves
no half-made environment and leaves Backend Python alone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import bpy
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILDER = os.environ.get("SCENECAST_BACKEND_PYTHON", "")


@pytest.fixture
def prefs(scenecast):  # noqa: ANN001, ANN201
    p = bpy.context.preferences.addons["bl_ext.user_default.scenecast"].preferences
    old = (p.backend_python, p.backend_wheels)
    yield p
    p.backend_python, p.backend_wheels = old


@pytest.fixture(autouse=True)
def no_machine_pip_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


def test_offline_without_a_wheel_folder_says_to_allow_online_access(prefs, sc_module) -> None:  # noqa: ANN001
    assert not bpy.app.online_access  # bpy as a module runs offline, as Blender does until allowed
    prefs.backend_wheels = ""
    with pytest.raises(RuntimeError, match="Allow Online Access"):
        bpy.ops.scenecast.install_backend()
    venv = Path(sc_module("ui.operators.install_backend").venv_dir())
    assert not venv.exists()


@pytest.mark.skipif(not BUILDER, reason="needs SCENECAST_BACKEND_PYTHON (make test sets it)")
def test_a_wheel_folder_without_torch_names_it_and_changes_nothing(prefs, sc_module, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("backend", "presets"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([BUILDER, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(wheels), str(src)], check=True, capture_output=True, timeout=300)
    prefs.backend_wheels, prefs.backend_python = str(wheels), "/keep/this/python"
    with pytest.raises(RuntimeError, match=r"torch==2\.13\.0 is not available from .*wheels"):
        bpy.ops.scenecast.install_backend()
    assert prefs.backend_python == "/keep/this/python"
    assert not Path(sc_module("ui.operators.install_backend").venv_dir()).exists()
    log = Path(sc_module("blender.settings").log_path()).parent / "install.log"
    assert "PyTorch" in log.read_text() and "offline, only from" in log.read_text()


@pytest.mark.skipif(not BUILDER, reason="needs SCENECAST_BACKEND_PYTHON (make test sets it)")
def test_the_zip_ships_the_backend_wheel_and_install_backend_uses_it(extension_zip, sc_module) -> None:  # noqa: ANN001
    import zipfile

    assert "backend_dist/scenecast_backend-0.1.0-py3-none-any.whl" in zipfile.ZipFile(extension_zip).namelist()
    source = Path(sc_module("core.backend_install").default_backend_source(False))
    assert source.name == "scenecast_backend-0.1.0-py3-none-any.whl" and source.is_file()
    assert source.parent.parent == Path(sc_module("core.backend_install").__file__).parents[1]  # inside the add-on

