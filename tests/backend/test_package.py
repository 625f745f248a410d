"""The backend is a package: a wheel built from the checkout installs offline into a fresh venv and its
``scenecast-backend`` console script runs there (outside the checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(out: Path) -> Path:
    """``pip wheel --no-deps --no-build-isolation`` of a copy of the package's sources (setuptools builds
    in-tree: the copy keeps build/ and *.egg-info out of the checkout). Offline: the venv's setuptools."""
    src = out / "src"
    for name in ("pyproject.toml", "README.md"):
        src.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, src / name)
    for name in ("backend", "presets"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
                   check=True, capture_output=True, text=True, timeout=300,
                   env=dict(os.environ, PIP_NO_CACHE_DIR="1"))
    wheels = sorted(out.glob("scenecast_backend-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_the_backend_its_data_and_the_pins(wheel: Path) -> None:
    from backend.version import __version__

    assert wheel.name.startswith(f"scenecast_backend-{__version__}-py3-none-any")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "backend").rglob("__init__.py")}
    assert {f"{p}/__init__.py" for p in packages} <= names  # pyproject.toml lists every package
    assert "backend/cli.py" in names and "backend/pipelines/stages/generate.py" in names
    assert "backend/models/bpe_simple_vocab_16e6.txt.gz" in names  # the CLIP tokenizer's merges
    assert {p.name for p in (ROOT / "presets").glob("*.json")} == {
        Path(n).name for n in names if n.startswith("backend/presets/")}
    assert "scenecast-backend = backend.cli:main_exit" in entry
    pins = [line.strip() for line in (ROOT / "backend/requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert set(pins) <= set(requires) and "torch==2.13.0" in requires
    assert 'pytest==9.2.0; extra == "test"' in requires
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["test"][0] == "pytest==9.2.0" and set(extras) == {"test"}  # tests only: nothing more for users


def test_the_wheel_installs_offline_and_its_command_runs(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)  # pip from ensurepip's bundled wheel: offline
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheel)], check=True, capture_output=True, timeout=300)
    script = env_dir / "bin" / "scenecast-backend"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    from backend.version import PROTOCOL, __version__

    version = subprocess.run([str(script), "--version"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"scenecast-backend {__version__} (protocol {PROTOCOL})"
    helped = subprocess.run([str(script), "serve", "--help"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert helped.returncode == 0 and "--models-folder" in helped.stdout, helped.stderr
    # (backend.spec needs pydantic, not installed here: --no-deps) find the installed package by path
    where = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('backend').origin)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    installed = Path(where.stdout.strip()).parent
    assert installed.is_relative_to(env_dir), where.stderr  # the installed copy, not the checkout
    assert sorted(p.name for p in (installed / "presets").glob("*.json")) == sorted(
        p.name for p in (ROOT / "presets").glob("*.json"))
