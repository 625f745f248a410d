"""``make demo`` sees the user's own Hugging Face cache (a default model already downloaded is used);
the test targets keep every cache inside the checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def recipe(target: str, marker: str) -> str:
    """The command ``make -n`` would run for ``target``'s own recipe line containing ``marker``
    (the venv stamps are assumed up to date: nothing is built)."""
    stamps = [f"--assume-old={p}" for p in (".venv/.stamp", ".venv-blender/.stamp", ".venv-blender42/.stamp",
                                              ".venv-typecheck/.stamp")]
    out = subprocess.run(["make", "-n", "-C", str(ROOT), *stamps, target], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return next(line for line in out.splitlines() if marker in line)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_demo_uses_the_users_hugging_face_cache_and_tests_stay_isolated() -> None:
    demo = recipe("demo", "examples/demo.py")
    assert "XDG_CACHE_HOME" not in demo and "HF_HOME" not in demo and "HF_HUB_CACHE" not in demo
    assert f"BLENDER_USER_RESOURCES={ROOT}/.cache/blender-user" in demo
    for target, marker in (("test-backend", "tests/backend"), ("test-core", "tests/addon_core"),
                           ("test-blender", "tests/blender")):
        assert f"XDG_CACHE_HOME={ROOT}/.cache" in recipe(target, marker)
