"""The add-on's other operators in background mode: extract passes into images, start/stop the backend."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest

from e2e_support import ADDON_MODULE, backend_python, free_port, healthy

bpy = pytest.importorskip("bpy")


def test_extract_passes_operator_writes_packed_non_color_images(scenecast, scene):
    scene.scenecast.width, scene.scenecast.height = 72, 64
    with bpy.context.temp_override(scene=scene):
        assert bpy.ops.scenecast.extract_passes() == {"FINISHED"}
    api = importlib.import_module(ADDON_MODULE + ".api")
    passes = api.extract_passes(scene, resolution=(72, 64))
    for name in ("depth", "normal", "edges", "segmentation"):
        image = bpy.data.images[f"Scenecast {name}"]
        assert tuple(image.size) == (72, 64)
        assert image.colorspace_settings.name == "Non-Color"
        assert image.packed_file is not None  # saved inside the .blend, nothing lost on reopen
        pixels = np.empty(72 * 64 * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        shown = np.rint(pixels.reshape(64, 72, 4)[::-1, :, :3] * 255).astype(np.uint8)
        assert np.array_equal(shown, passes.control[name]), name


def test_start_and_stop_backend_operators(scenecast, prefs):
    url = f"http://127.0.0.1:{free_port()}"
    prefs.server_url, prefs.backend_python = url, backend_python()
    assert bpy.ops.scenecast.start_backend() == {"FINISHED"}  # blocks in background mode
    assert healthy(url)
    assert bpy.ops.scenecast.stop_backend() == {"FINISHED"}
    assert not healthy(url)
    # Nothing we started runs there now: stop says so and leaves whatever is there alone.
    assert bpy.ops.scenecast.stop_backend() == {"CANCELLED"}


def test_start_backend_with_a_wrong_python_names_the_preference(scenecast, prefs, tmp_path):
    prefs.server_url = f"http://127.0.0.1:{free_port()}"
    prefs.backend_python = str(tmp_path / "no-such-python")
    with pytest.raises(RuntimeError, match="Backend Python"):
        bpy.ops.scenecast.start_backend()


def test_results_of_a_saved_blend_go_next_to_it_with_relative_paths(api, backend, scene, prefs, tmp_path):
    """Runs last in this process: it saves the session's .blend (bpy.data.filepath stays set)."""
    prefs.output_dir = ""
    blend = tmp_path / "project" / "shot.blend"
    blend.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), check_existing=False)
    assert api.output_dir() == str(blend.parent / "scenecast")
    images = api.generate(scene, prompt="x", server=backend.url, units=[{"type": "depth"}],
                          model="builtin:tiny", width=64, height=64, steps=1)
    assert images[0].filepath.startswith("//scenecast" + os.sep)
    assert Path(bpy.path.abspath(images[0].filepath)).parent == blend.parent / "scenecast"
    assert Path(bpy.path.abspath(images[0].filepath)).is_file()
