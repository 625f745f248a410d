"""Build the Scenecast extension zip with Blender's own extension builder, then validate it.

    python tools/build_extension.py --out dist        # → dist/scenecast-<version>.zip

Stages ``blender_manifest.toml`` + the contents of ``addon/`` (+ ``presets/*.json`` into the
package's ``presets/`` folder) in ``build/extension/``, so backend/, tests/ and the rest of the repo
can never end up in the zip, and runs ``blender_ext.py build`` and ``blender_ext.py validate``: the
same code as ``blender --command extension build|validate``. ``blender_ext.py`` is found inside the
``bpy`` module this Python has (``bpy/<ver>/scripts/addons_core/bl_pkg/cli/``), or given with
``--blender-ext``; failing both, a ``blender`` executable on PATH is used. Run it with the Python of
``.venv-blender`` (``make extension`` does).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")


def find_blender_ext() -> Path | None:
    """``blender_ext.py`` of the bpy module importable here (without importing bpy: it is slow)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    return None


def stage(staging: Path) -> dict:
    """Copy what goes into the package into ``staging`` (emptied first); returns the manifest."""
    manifest_path = ROOT / "blender_manifest.toml"
    manifest = tomllib.loads(manifest_path.read_text(encoding="utf-8"))
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(ROOT / "addon", staging, ignore=IGNORE)
    shutil.copy2(manifest_path, staging / "blender_manifest.toml")
    presets = sorted((ROOT / "presets").glob("*.json"))
    if presets:
        (staging / "presets").mkdir(exist_ok=True)
        for preset in presets:
            shutil.copy2(preset, staging / "presets" / preset.name)
    return manifest


def add_backend_wheel(staging: Path, python: str) -> Path:
    """Build the backend's wheel with ``python`` (a Python with setuptools >= 77, e.g. the backend venv's)
    into ``<staging>/backend_dist/``: Install Backend installs it from there, so the zip alone is
    enough to set up a backend. A plain data file: Blender never installs it into its own Python."""
    src = staging.parent / "backend-src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("backend", "presets"):
        shutil.copytree(ROOT / name, src / name, ignore=IGNORE)
    out = staging / "backend_dist"
    _run([python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "--disable-pip-version-check", "-w", str(out), str(src)])
    shutil.rmtree(src)
    wheels = sorted(out.glob("scenecast_backend-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"building the backend wheel left {len(wheels)} wheels in {out}")
    return wheels[0]


def builder_command(blender_ext: Path | None) -> list[str]:
    if blender_ext is not None:
        return [sys.executable, str(blender_ext)]
    blender = shutil.which("blender")
    if blender is None:
        raise SystemExit(
            "cannot find Blender's extension builder: install bpy in this Python (make venv, then use"
            " .venv-blender/bin/python), pass --blender-ext PATH/TO/blender_ext.py, or put blender on PATH"
        )
    return [blender, "--background", "--factory-startup", "--command", "extension"]


def build(out_dir: Path, staging: Path, blender_ext: Path | None = None, backend_wheel_python: str = "") -> Path:
    """Stage, build and validate; returns the zip's path. Raises ``SystemExit`` with the builder's words.
    With ``backend_wheel_python`` the zip also carries the backend's wheel (:func:`add_backend_wheel`)."""
    manifest = stage(staging)
    if backend_wheel_python:
        add_backend_wheel(staging, backend_wheel_python)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    if zip_path.exists():
        zip_path.unlink()
    command = builder_command(blender_ext or find_blender_ext())
    _run(command + ["build", "--source-dir", str(staging), "--output-filepath", str(zip_path)])
    _run(command + ["validate", str(zip_path)])
    return zip_path


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    sys.stdout.write(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip (default dist/)")
    parser.add_argument(
        "--staging", type=Path, default=ROOT / "build" / "extension", help="staging folder (emptied)"
    )
    parser.add_argument("--blender-ext", type=Path, default=None, help="path to Blender's blender_ext.py")
    parser.add_argument("--backend-wheel-python", default="",
                        help="also ship the backend's wheel, built with this Python (setuptools >= 77), for"
                        " the add-on's Install Backend")
    args = parser.parse_args(argv)
    zip_path = build(args.out, args.staging, args.blender_ext, args.backend_wheel_python)
    print(zip_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
