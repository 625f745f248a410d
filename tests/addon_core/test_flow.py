"""Warping maths on synthetic flows: shifts, bilinear sampling, masks, dilation, the flicker metric."""

import numpy as np
import pytest

from addon.core.flow import (
    disocclusion_mask,
    flicker,
    flow_to_next,
    flow_to_previous,
    warp,
    warped_difference,
)

H, W = 24, 32


def _texture(seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(H, W, channels), dtype=np.uint8)


def _constant_flow(dx: float, dy: float) -> np.ndarray:
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def test_vector_pass_channels_map_to_flows() -> None:
    # Blender: ch0,1 = pos(t-1) - pos(t), ch2,3 = pos(t) - pos(t+1), y up. A point moving 3 px right
    # and 2 px down per frame: pos(t-1) - pos(t) = (-3, +2 up); pos(t) - pos(t+1) = (-3, +2 up).
    vector = np.zeros((H, W, 4), np.float32)
    vector[..., 0], vector[..., 1], vector[..., 2], vector[..., 3] = -3.0, 2.0, -3.0, 2.0
    assert np.allclose(flow_to_previous(vector), [-3.0, -2.0])  # was 3 px left, 2 px up
    assert np.allclose(flow_to_next(vector), [3.0, 2.0])  # will be 3 px right, 2 px down
    with pytest.raises(ValueError, match="vector=True"):
        flow_to_previous(np.zeros((H, W, 3)))


def test_integer_shift_reproduces_exactly() -> None:
    prev = _texture()
    # The scene moved 3 px right and 2 px down: frame t's pixel (y, x) was at (y - 2, x - 3).
    cur = np.zeros_like(prev)
    cur[2:, 3:] = prev[:-2, :-3]
    warped, inside = warp(prev, _constant_flow(-3, -2))
    assert warped.dtype == np.float32 and warped.shape == prev.shape
    assert not inside[:2].any() and not inside[:, :3].any() and inside[2:, 3:].all()
    assert np.array_equal(warped[inside], cur[inside].astype(np.float32))
    assert warped_difference(cur, prev, _constant_flow(-3, -2), None) == 0.0


def test_grayscale_and_zero_flow_are_identity() -> None:
    prev = _texture(channels=1)[..., 0].astype(np.float32) / 255.0
    warped, inside = warp(prev, _constant_flow(0, 0))
    assert inside.all() and np.array_equal(warped, prev)


def test_subpixel_shift_is_bilinear() -> None:
    prev = _texture(1).astype(np.float32)
    warped, inside = warp(prev, _constant_flow(0.25, 0.5))
    expected = (
        0.75 * 0.5 * prev[:-1, :-1] + 0.25 * 0.5 * prev[:-1, 1:] + 0.75 * 0.5 * prev[1:, :-1] + 0.25 * 0.5 * prev[1:, 1:]
    )
    assert np.allclose(warped[:-1, :-1], expected, atol=1e-3)
    # A linear ramp is reproduced exactly by bilinear sampling: value at x + 0.25.
    ramp = np.tile(np.arange(W, dtype=np.float32), (H, 1))
    out, inside = warp(ramp, _constant_flow(0.25, 0.0))
    assert np.allclose(out[:, :-1], ramp[:, :-1] + 0.25, atol=1e-5)
    assert inside[:, -1].all()  # x = W - 0.75 still lies within the last pixel


def test_outside_frame_is_masked() -> None:
    flow = _constant_flow(0, 0)
    flow[0, 0] = (-0.6, 0.0)  # beyond the left border by more than half a pixel
    flow[5, 5] = (0.0, H)  # far below
    flow[6, 6] = (np.nan, 0.0)
    _, inside = warp(np.zeros((H, W)), flow)
    assert not inside[0, 0] and not inside[5, 5] and not inside[6, 6]
    assert inside.sum() == H * W - 3
    depth = np.full((H, W), 4.0, np.float32)
    mask = disocclusion_mask(flow, depth, depth)
    assert mask.sum() == 3 and mask[0, 0] and mask[5, 5] and mask[6, 6]


def _object_scene(x0: int) -> tuple[np.ndarray, np.ndarray]:
    """A wall at depth 10 (id 0) with a square (id 1) at depth 5 spanning columns x0..x0+7."""
    depth = np.full((H, W), 10.0, np.float32)
    ids = np.zeros((H, W), np.int32)
    depth[8:16, x0 : x0 + 8] = 5.0
    ids[8:16, x0 : x0 + 8] = 1
    return depth, ids


def test_depth_disagreement_marks_disoccluded_region() -> None:
    # The square moves 4 px right between t-1 and t; the wall is static.
    depth_prev, _ = _object_scene(10)
    depth_t, ids_t = _object_scene(14)
    flow = _constant_flow(0, 0)
    flow[ids_t == 1] = (-4.0, 0.0)
    mask = disocclusion_mask(flow, depth_t, depth_prev)
    expected = np.zeros((H, W), bool)
    expected[8:16, 10:14] = True  # wall uncovered behind the square
    assert np.array_equal(mask, expected)


def test_depth_tolerance_is_relative_and_background_disagrees_with_surface() -> None:
    flow = _constant_flow(0, 0)
    depth_t = np.full((H, W), 10.0, np.float32)
    depth_prev = depth_t.copy()
    depth_prev[0, 0] = 10.4  # 4 %: same surface
    depth_prev[1, 1] = 10.6  # 6 %: another surface
    depth_prev[2, 2] = np.inf  # background in t-1, surface in t
    depth_t[3, 3] = np.inf  # surface in t-1, background in t
    depth_t[4, 4] = depth_prev[4, 4] = np.inf  # background in both: fine
    mask = disocclusion_mask(flow, depth_t, depth_prev)
    assert set(zip(*np.nonzero(mask))) == {(1, 1), (2, 2), (3, 3)}
    assert not disocclusion_mask(flow, depth_t, depth_prev, rel_tolerance=0.07)[1, 1]


def test_blended_taps_across_a_silhouette_are_masked() -> None:
    depth_prev = np.full((H, W), 10.0, np.float32)
    depth_prev[:, 16:] = 5.0
    depth_t = np.full((H, W), 10.0, np.float32)
    mask = disocclusion_mask(_constant_flow(0.5, 0), depth_t, depth_prev)
    assert mask[:, 15].all() and mask[:, 16:].all() and not mask[:, :15].any()
    # Exactly on a pixel centre only that pixel counts: the neighbour's weight is zero.
    assert not disocclusion_mask(_constant_flow(1.0, 0), depth_t, depth_prev)[:, :15].any()


def test_grazing_plane_is_not_masked() -> None:
    # A floor seen at a grazing angle: inverse depth is affine in the image, depth changes ~8 % a row.
    rows = np.arange(H, dtype=np.float32)[:, None]
    depth_prev = np.repeat(1.0 / (0.02 + 0.0017 * rows), W, axis=1).astype(np.float32)
    flow = _constant_flow(0.3, 0.5)  # the camera moved a little: same floor, sub-pixel shift
    rows_t = rows + 0.5
    depth_t = np.repeat(1.0 / (0.02 + 0.0017 * rows_t), W, axis=1).astype(np.float32)
    assert np.abs(depth_prev[1:] / depth_prev[:-1] - 1).max() > 0.05  # neighbours differ more than the tolerance
    mask = disocclusion_mask(flow, depth_t, depth_prev)
    assert not mask[:-1, :-1].any()


def test_object_id_mask() -> None:
    depth = np.full((H, W), 10.0, np.float32)  # same depths: only the ids tell the surfaces apart
    ids_prev = np.zeros((H, W), np.int32)
    ids_t = ids_prev.copy()
    ids_t[4:8, 4:8] = 2
    flow = _constant_flow(0, 0)
    assert not disocclusion_mask(flow, depth, depth).any()
    mask = disocclusion_mask(flow, depth, depth, object_id_t=ids_t, object_id_prev=ids_prev)
    assert np.array_equal(mask, ids_t == 2)
    with pytest.raises(ValueError, match="both"):
        disocclusion_mask(flow, depth, depth, object_id_t=ids_t)


def test_flicker_is_zero_for_a_perfectly_warped_sequence() -> None:
    base = np.random.default_rng(3).integers(0, 256, size=(H, W + 20, 3), dtype=np.uint8)
    frames = [base[:, 2 * k : 2 * k + W].copy() for k in range(4)]  # camera pans 2 px right a frame
    flows = [_constant_flow(2.0, 0.0)] * 3  # frame t's pixel x was at x + 2 in frame t-1
    assert flicker(frames, flows) == [0.0, 0.0, 0.0]
    # One flow per frame (the first ignored) and valid masks are accepted too.
    valid = np.ones((H, W), bool)
    assert flicker(frames, [None, *flows], [None, valid, valid, valid]) == [0.0, 0.0, 0.0]
    # Not warping (zero flow) measures the raw frame-to-frame change, which is large.
    unwarped = flicker(frames, [_constant_flow(0, 0)] * 3)
    assert min(unwarped) > 40.0
    # Noise in one frame shows up in exactly the pairs that contain it.
    noisy = list(frames)
    noisy[2] = np.clip(frames[2].astype(int) + 10, 0, 255).astype(np.uint8)
    values = flicker(noisy, flows)
    assert values[0] == 0.0 and values[1] > 5.0 and values[2] > 5.0
    assert np.isnan(warped_difference(frames[1], frames[0], flows[0], np.zeros((H, W), bool)))
