"""What differs between Blender 4.2, 4.5, 5.0 and 5.3 is handled in ``blender/compat.py``, and works on each.

These run on every version ``make test`` covers; each one failed on at least one of them before the
difference went into ``compat``.
"""

from __future__ import annotations

import math
import re
import sys
import warnings
from pathlib import Path

import bpy
import numpy as np
import pytest

from blender_scenes import add_camera, add_sphere

W, H = 64, 48

ROOT = Path(__file__).resolve().parents[2]


def test_version_branches_live_only_in_compat():
    """No module but ``blender/compat.py`` asks which Blender it runs in (directly or by feature test)."""
    asks = re.compile(r"bpy\.app\.version\b|hasattr\([^)]*\"(media_type|compositing_node_group|strips|compositor_effects)\"")
    found = []
    for path in sorted((ROOT / "addon").rglob("*.py")):
        if path.name == "compat.py" and path.parent.name == "blender":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if asks.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "version-dependent code outside addon/blender/compat.py:\n" + "\n".join(found)


@pytest.fixture
def script_scene(empty_scene):
    """The demo's blockout street, built by a script into a new scene made the window's scene, as a
    TD's ``blender -b`` script or ``make demo`` does; removed afterwards."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import blockout_scene
    finally:
        sys.path.remove(str(ROOT / "examples"))
    scene = blockout_scene.build("Scripted", resolution=(W, H))
    yield scene
    bpy.context.window.scene = empty_scene
    objects = list(scene.objects)
    bpy.data.scenes.remove(scene)
    for obj in objects:
        bpy.data.objects.remove(obj)


def test_depth_range_of_a_scene_a_script_just_built(script_scene, sc_module):
    """4.x without an event loop leaves ``matrix_world`` of new objects at the identity until a render
    or frame change: the depth range must come from evaluated transforms (on 4.2/4.5 it said "nothing
    renderable is in front of the camera" for the demo's street)."""
    extract = sc_module("blender.extract")
    depth_range = extract.scene_depth_range(script_scene, [script_scene.camera], (W, H))
    evaluated = script_scene.camera.evaluated_get(bpy.context.evaluated_depsgraph_get())
    assert tuple(evaluated.matrix_world.col[3])[:3] == pytest.approx((0.5, -6.0, 1.7))
    assert 0.1 <= depth_range.near < 6.0 < depth_range.far  # the street's nearest buildings are ~6 units away


def test_texturing_rig_is_centred_on_objects_a_script_just_placed(script_scene, sc_module):
    texturing = sc_module("blender.texturing")
    ball = add_sphere(script_scene, name="Ball", radius=1.0, location=(3.0, 4.0, 5.0), segments=16, rings=8)
    center, radius = texturing.selection_sphere([ball])
    np.testing.assert_allclose(center, (3.0, 4.0, 5.0), atol=1e-5)
    assert radius == pytest.approx(math.sqrt(3.0), rel=1e-3)


def test_compositor_feed_creates_one_tree_without_deprecated_api(empty_scene, sc_module):
    """5.3 deprecates ``Scene.compositing_node_group`` for compositor effects (and setting it makes an
    effect on the side); 4.x has ``scene.node_tree``. The feed works on each, twice, with one node."""
    compat, outputs = sc_module("blender.compat"), sc_module("blender.frame_outputs")
    image = bpy.data.images.new("Fed", 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        node = outputs.feed_compositor(empty_scene, image)
        again = outputs.feed_compositor(empty_scene, image)
        tree = compat.compositor_node_group(empty_scene)
    assert tree is not None and node.name == again.name == "Scenecast Image"
    assert [n.name for n in tree.nodes].count("Scenecast Image") == 1 and tree.nodes["Scenecast Image"].image == image
    assert any(link.from_node.name == "Scenecast Image" for link in tree.links)
    if "compositor_effects" in empty_scene.bl_rna.properties:
        assert len(empty_scene.compositor_effects) == 1


def test_extraction_uses_no_deprecated_api(empty_scene, sc_module):
    """Render setup, capture and restore of the user's settings: no DeprecationWarning on any version
    (5.3 warned on every extraction, reading ``compositing_node_group``)."""
    passes = sc_module("blender.passes")
    camera = add_camera(empty_scene)
    add_sphere(empty_scene, location=(0, 0, -4), segments=16, rings=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        raw = passes.render_passes(empty_scene, camera, (W, H), clay=True)
    assert raw.depth.shape == (H, W) and np.isfinite(raw.depth).any()


def test_sequencer_strips_and_video_media_type(empty_scene, sc_module, tmp_path):
    """4.x calls strips ``sequences`` and has no media type; the strip helper works on each."""
    outputs = sc_module("blender.frame_outputs")
    paths = []
    for i in range(2):
        image = bpy.data.images.new(f"f{i}", 4, 4)
        image.filepath_raw = str(tmp_path / f"frame_{i + 1:04d}.png")
        image.file_format = "PNG"
        image.save()
        paths.append(image.filepath_raw)
    compat = sc_module("blender.compat")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # 5.3 deprecates frame_start & co.
        outputs.add_image_strip(empty_scene, paths, 1)
        strip = outputs.add_image_strip(empty_scene, paths, 1)  # the same frames again: replaced
        strips = list(compat.sequencer_strips(empty_scene.sequence_editor))
        assert [s.name for s in strips] == [strip.name] and compat.strip_range(strip) == (1, 3)
    assert len(strip.elements) == 2 and strip.name.startswith("Scenecast")
