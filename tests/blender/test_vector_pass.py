"""Blender's Vector pass: its measured convention, and warping frame t−1's render into frame t with it.

The check of issue 5: warping frame t−1's colour render by the Vector pass reproduces frame t's on
non-disoccluded pixels (exactly, up to sampling noise, for an integer camera shift), and the
disocclusion mask marks the wall uncovered behind a moving object.
"""

from __future__ import annotations

import numpy as np
import pytest

from blender_scenes import add_camera, add_plane, half_extent
from motion_scenes import motion_scene

W, H = 96, 64
SAMPLES = 32


def test_vector_channels_are_previous_and_next_motion_y_up(empty_scene, sc_module):
    """Camera keyed so the wall's image moves 2 px right, 1 px down from frame 1 to 2; 4 right, 3 down to 3."""
    passes, flow, scene_state = sc_module("blender.passes"), sc_module("core.flow"), sc_module("blender.scene_state")
    cam = add_camera(empty_scene)
    add_plane(empty_scene, size=4.0, location=(0, 0, -10))  # small: background around it
    metres = 2 * half_extent(cam, 10.0) / W
    for frame, (x, y) in ((1, (0, 0)), (2, (-2, 1)), (3, (-6, 4))):  # camera left/up = image right/down
        cam.location = (x * metres, y * metres, 0.0)
        cam.keyframe_insert("location", frame=frame)
    empty_scene.render.use_motion_blur = True  # the user's setting: off for the render, then back
    empty_scene.render.motion_blur_shutter = 0.2  # measured: the Vector pass ignores the shutter
    empty_scene.frame_step = 2  # ... and the frame step: always ±1 scene frame
    view_layer = empty_scene.view_layers[0]
    before = scene_state.capture_state(empty_scene, view_layer)
    raw = passes.render_passes(empty_scene, cam, (W, H), frame=2, vector=True)
    after = scene_state.capture_state(empty_scene, view_layer)
    assert after == before and empty_scene.render.use_motion_blur
    assert raw.vector.shape == (H, W, 4) and raw.vector.dtype == np.float32
    hit = raw.object_id >= 0
    assert 0.1 < hit.mean() < 0.9
    # Blender's channels: (prev − cur) and (cur − next), x right, y up, in pixels. The point was 2 px
    # left and 1 px higher in frame 1: (−2, +1); it will be 4 px right and 3 px lower: (−4, +3).
    np.testing.assert_allclose(raw.vector[hit], np.broadcast_to([-2.0, 1.0, -4.0, 3.0], (hit.sum(), 4)), atol=1e-3)
    assert not raw.vector[~hit].any()  # no surface: no motion
    np.testing.assert_allclose(flow.flow_to_previous(raw.vector)[hit], np.broadcast_to([-2.0, -1.0], (hit.sum(), 2)), atol=1e-3)
    np.testing.assert_allclose(flow.flow_to_next(raw.vector)[hit], np.broadcast_to([4.0, 3.0], (hit.sum(), 2)), atol=1e-3)
    # Without vector=True nothing changes: no vector pass.
    assert passes.render_passes(empty_scene, cam, (W, H), frame=2).vector is None


def _two_frames(scene, sc_module, kind, shift):
    extract = sc_module("blender.extract")
    objs = motion_scene(scene, kind, W, shift)
    prev = extract.extract_passes(scene, objs["camera"], (W, H), frame=1, color=True, color_samples=SAMPLES)
    cur = extract.extract_passes(scene, objs["camera"], (W, H), frame=2, color=True, color_samples=SAMPLES, vector=True)
    assert "vector" not in prev.raw and cur.raw["vector"].shape == (H, W, 4)
    ids = {name: i for i, name in cur.objects.items()}
    return prev, cur, ids["Wall"], ids["Cube"]


def _warp_errors(flow, prev, cur):
    f = flow.flow_to_previous(cur.raw["vector"])
    occluded = flow.disocclusion_mask(
        f, cur.raw["depth"], prev.raw["depth"], object_id_t=cur.raw["object_id"], object_id_prev=prev.raw["object_id"]
    )
    warped, _ = flow.warp(prev.color, f)
    error = np.abs(warped - cur.color.astype(np.float32)).mean(axis=-1)  # 0..255
    return f, occluded, error


def _silhouette_band(masks, ids, cube, radius=2):
    inside = ids == cube
    width = masks.width_for_radius(radius)
    return masks.dilate(inside, width) & masks.dilate(~inside, width)


def test_warp_by_camera_motion_reproduces_next_frame(empty_scene, sc_module):
    flow = sc_module("core.flow")
    prev, cur, wall, cube = _two_frames(empty_scene, sc_module, "camera", (2.0, 1.0))
    f, occluded, error = _warp_errors(flow, prev, cur)
    ids = cur.raw["object_id"]
    np.testing.assert_allclose(f[ids == wall], np.broadcast_to([-2.0, 1.0], ((ids == wall).sum(), 2)), atol=1e-3)
    valid = ~occluded
    masks = sc_module("core.masks")
    band = _silhouette_band(masks, ids, cube) | _silhouette_band(masks, prev.raw["object_id"], cube)
    # Measured (32 spp, 96×64): wall away from silhouettes 0.07/255 (sampling noise of the pixel
    # filter; max 1 level), all valid pixels 0.5 (anti-aliased silhouettes, bilinear on the cube's
    # non-integer motion); not warping: 10.6.
    wall_interior = valid & ~band & (ids == wall)
    assert wall_interior.sum() > 0.5 * H * W
    assert error[wall_interior].mean() < 0.25 and error[wall_interior].max() <= 2.0
    warped = flow.warped_difference(cur.color, prev.color, f, valid)
    unwarped = flow.warped_difference(cur.color, prev.color, np.zeros_like(f), valid)
    assert warped < 1.0 and unwarped > 5.0 and warped < 0.1 * unwarped
    # Outside the frame: the left two columns and the bottom row have no source in frame t−1.
    assert occluded[:, :2].all() and occluded[-1].all()
    assert not (occluded & ~band)[:-1, 2:].any()  # the rest is only around the cube's silhouettes


def test_warp_by_object_motion_and_disocclusion_behind_the_object(empty_scene, sc_module):
    flow = sc_module("core.flow")
    prev, cur, wall, cube = _two_frames(empty_scene, sc_module, "object", (3.4, 0.6))
    f, occluded, error = _warp_errors(flow, prev, cur)
    ids_prev, ids = prev.raw["object_id"], cur.raw["object_id"]
    assert not f[ids == wall].any()  # the wall is static
    assert (f[ids == cube][:, 0] < -2.5).all()  # the cube came from the left
    uncovered = (ids_prev == cube) & (ids == wall)  # wall now where the cube was: no source in t−1
    assert uncovered.sum() > 50
    assert occluded[uncovered].all()
    masks = sc_module("core.masks")
    band = _silhouette_band(masks, ids, cube) | _silhouette_band(masks, ids_prev, cube)
    assert not (occluded & ~uncovered & ~band).any()  # nothing marked away from the cube
    valid = ~occluded
    # Measured: static wall away from the cube exactly 0 (same pixels, same samples); cube interior
    # 1.4/255 (bilinear resampling of its texture moved by 3.3 px); all valid pixels 0.5; unwarped 3.8.
    assert error[valid & ~band & (ids == wall)].max() == 0.0
    assert error[valid & ~band & (ids == cube)].mean() < 2.5
    warped = flow.warped_difference(cur.color, prev.color, f, valid)
    unwarped = flow.warped_difference(cur.color, prev.color, np.zeros_like(f), valid)
    assert warped < 1.0 and warped < 0.25 * unwarped
    # The uncovered wall really differs from frame t−1's warp there (the reason it is masked).
    assert error[uncovered].mean() > 5.0


@pytest.mark.parametrize("kind", ["camera", "object"])
def test_flicker_metric_on_rendered_frames(empty_scene, sc_module, kind):
    flow = sc_module("core.flow")
    prev, cur, _, _ = _two_frames(empty_scene, sc_module, kind, (2.0, 1.0))
    f = flow.flow_to_previous(cur.raw["vector"])
    masks = sc_module("core.masks")
    valid = ~masks.dilate(flow.disocclusion_mask(f, cur.raw["depth"], prev.raw["depth"]), masks.width_for_radius(1))
    values = flow.flicker([prev.color, cur.color], [f], [valid])
    assert len(values) == 1 and values[0] < 0.6
