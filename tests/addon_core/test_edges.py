"""Edges on ray-cast synthetic scenes: a rotated box (3 visible faces) over a tilted floor, a sphere."""

import numpy as np
import pytest

from addon.core.conventions import BACKGROUND_ID
from addon.core.edges import canny, edges_to_control, gaussian_blur, geometric_edges
from addon.core.masks import dilate

H = W = 96
FOCAL = 110.0  # pixels


def _rays():
    y, x = np.mgrid[0:H, 0:W]
    dirs = np.stack([(x + 0.5 - W / 2) / FOCAL, -(y + 0.5 - H / 2) / FOCAL, -np.ones((H, W))], -1)
    return dirs  # z = -1: the ray parameter t is the planar depth


def _rot(ax, ay):
    cx, sx, cy, sy = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return rx @ ry


def _scene(box=True, floor=True, floor_normal=(0.0, 0.95, 0.31), floor_point=(0, -1.6, -6)):
    """Depth (planar), camera-space normals, ids and the face index (-1 floor / background)."""
    dirs = _rays()
    depth = np.full((H, W), np.inf)
    normal = np.zeros((H, W, 3))
    ids = np.full((H, W), BACKGROUND_ID, dtype=np.int32)
    face = np.full((H, W), -1)
    if floor:
        nf = np.array(floor_normal) / np.linalg.norm(floor_normal)
        denom = dirs @ nf
        t = np.divide(np.array(floor_point) @ nf, denom, out=np.full((H, W), np.inf), where=denom != 0)
        hit = (t > 0) & (t < 60)
        depth[hit] = t[hit]
        normal[hit] = nf
        ids[hit] = 1
    if box:
        rot = _rot(0.45, 0.6)  # box-local -> camera
        centre = np.array([0.0, 0.0, -6.0])
        half = np.array([1.0, 0.8, 1.2])
        o = -centre @ rot  # ray origin (camera at 0) in box space: R^T (0 - c)
        dl = dirs @ rot
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-half - o) / dl
            t2 = (half - o) / dl
        tmin = np.minimum(t1, t2)
        tmax = np.maximum(t1, t2)
        tnear = tmin.max(-1)
        tfar = tmax.min(-1)
        axis = tmin.argmax(-1)
        hit = (tnear <= tfar) & (tnear > 0) & (tnear < depth)
        depth[hit] = tnear[hit]
        sign = -np.sign(np.take_along_axis(dl, axis[..., None], -1)[..., 0])
        local = np.zeros((H, W, 3))
        local[np.arange(H)[:, None], np.arange(W)[None], axis] = sign
        cam_n = local @ rot.T
        normal[hit] = cam_n[hit]
        ids[hit] = 0
        face[hit] = (axis * 2 + (sign > 0))[hit]
    return depth.astype(np.float32), normal.astype(np.float32), ids, face


def _boundaries(labels):
    """Pixels with a 4-neighbour of another label (both sides)."""
    b = np.zeros(labels.shape, bool)
    dv = labels[1:] != labels[:-1]
    dh = labels[:, 1:] != labels[:, :-1]
    b[1:] |= dv
    b[:-1] |= dv
    b[:, 1:] |= dh
    b[:, :-1] |= dh
    return b


def test_box_on_floor_edges_at_silhouettes_and_creases_only():
    depth, normal, ids, face = _scene()
    assert set(np.unique(face)) >= {-1} and len(np.unique(face[ids == 0])) == 3  # 3 faces visible
    edges = geometric_edges(depth, normal, ids)
    labels = np.where(ids == 0, face, ids * 10)  # each box face, floor, background distinct
    truth = _boundaries(labels)
    near_truth = dilate(truth, 3)
    assert not (edges & ~truth).any(), "edges drawn away from any silhouette or crease"
    # every boundary pair of pixels has one of its two pixels marked
    for axis in (0, 1):
        lab = np.moveaxis(labels, axis, 0)
        e = np.moveaxis(edges, axis, 0)
        pair = lab[1:] != lab[:-1]
        both_bg = (lab[1:] == BACKGROUND_ID * 10) & (lab[:-1] == BACKGROUND_ID * 10)
        pair &= ~both_bg
        assert ((e[1:] | e[:-1])[pair]).all(), f"boundary along axis {axis} missed"
    # flat faces and the floor away from boundaries are clean
    assert not edges[~near_truth].any()
    # silhouettes are drawn on the box (the nearer surface), not on the floor behind it
    box_outline = truth & (ids == 0) & _boundaries(ids == 0)
    assert edges[box_outline].mean() > 0.9
    floor_next_to_box = truth & (ids == 1) & _boundaries(ids == 0)
    assert not edges[floor_next_to_box].any()


def test_crease_only_without_ids_or_depth_jumps():
    """Creases come from normals alone: the same box with one id for everything."""
    depth, normal, ids, face = _scene(floor=False)
    edges = geometric_edges(depth, normal, ids, crease_angle_deg=40)
    crease = _boundaries(np.where(ids == 0, face, -1)) & (ids == 0) & ~_boundaries(ids)
    assert edges[crease].sum() >= crease.sum() / 2 - 1  # one side of each crease is marked
    no_crease = geometric_edges(depth, normal, ids, crease_angle_deg=179)
    assert not (no_crease & crease & ~dilate(_boundaries(ids), 3)).any()


def test_tilted_and_grazing_planes_give_no_edges():
    for n in [(0.0, 0.95, 0.31), (0.0, 1.0, 0.02), (0.3, 0.4, 0.87), (0.99, 0.0, 0.05)]:
        depth, normal, ids, _ = _scene(box=False, floor_normal=n, floor_point=(0, -1.2, -3))
        fg = ids == 1
        assert fg.sum() > 500
        edges = geometric_edges(depth, normal, ids)
        interior = fg & ~dilate(_boundaries(fg), 3)
        assert not edges[interior].any(), f"plane with normal {n} drew edges inside itself"


def test_depth_jump_within_one_object_is_an_edge():
    """Self-occlusion: two parallel planes of the same object at different depths."""
    depth = np.full((32, 32), 5.0, np.float32)
    depth[:, 16:] = 5.5  # 10 % further, same normal, same id
    normal = np.zeros((32, 32, 3), np.float32)
    normal[..., 2] = 1
    ids = np.zeros((32, 32), np.int32)
    edges = geometric_edges(depth, normal, ids)
    assert edges[:, 15].all() and not edges[:, 16].any()  # on the nearer side
    assert edges.sum() == 32
    small = depth.copy()
    small[:, 16:] = 5.05  # a 1 % step is below the 2 % threshold
    assert not geometric_edges(small, normal, ids).any()


def test_thin_object_in_front_gets_its_edges():
    depth = np.full((20, 20), 10.0, np.float32)
    depth[:, 9] = 4.0  # a one-pixel pole, same object id as the wall
    normal = np.zeros((20, 20, 3), np.float32)
    normal[..., 2] = 1
    edges = geometric_edges(depth, normal, np.zeros((20, 20), np.int32))
    assert edges[:, 9].all() and edges.sum() == 20


def test_sphere_has_a_silhouette_and_no_creases():
    h = w = 80
    y, x = np.mgrid[0:h, 0:w]
    nx, ny = (x + 0.5 - 40) / 30, (40 - y - 0.5) / 30
    r2 = nx**2 + ny**2
    fg = r2 < 1
    nz = np.sqrt(np.clip(1 - r2, 0, 1))
    depth = np.where(fg, 10 - 3 * nz, np.inf).astype(np.float32)  # orthographic-like sphere of radius 3
    ids = np.where(fg, 0, BACKGROUND_ID).astype(np.int32)
    edges = geometric_edges(depth, np.stack([nx, ny, nz], -1).astype(np.float32), ids)
    outline = fg & _boundaries(fg)
    assert edges[outline].all()
    assert not edges[fg & ~dilate(outline, 5)].any()
    assert not edges[~fg].any()


def test_width_and_control_image():
    e = np.zeros((9, 9), bool)
    e[4, 4] = True
    assert dilate(e, 1).sum() == 1 and dilate(e, 2).sum() == 4 and dilate(e, 3).sum() == 9
    assert dilate(e, 3)[3:6, 3:6].all()
    img = edges_to_control(dilate(e, 3))
    assert img.dtype == np.uint8 and img.shape == (9, 9, 3)
    assert (img[4, 4] == 255).all() and (img[0, 0] == 0).all()
    with pytest.raises(ValueError):
        dilate(e, 0)
    with pytest.raises(ValueError, match="shapes"):
        geometric_edges(np.ones((4, 4)), np.ones((4, 5, 3)), np.zeros((4, 4), int))


def test_canny_square_outline_thin_and_closed():
    img = np.zeros((64, 64))
    img[16:48, 20:44] = 255.0
    edges = canny(img, 100, 200, sigma=1.0)
    inside = np.zeros_like(edges)
    inside[19:45, 23:41] = True
    outside = np.ones_like(edges)
    outside[13:51, 17:47] = False
    assert not edges[inside].any() and not edges[outside].any()
    for r in range(20, 44):  # each row crossing the square has exactly one edge pixel per side
        assert edges[r, :32].sum() == 1 and edges[r, 32:].sum() == 1
    for c in range(24, 40):
        assert edges[:32, c].sum() == 1 and edges[32:, c].sum() == 1


def test_canny_hysteresis_keeps_connected_weak_and_drops_isolated_weak():
    img = np.zeros((40, 60))
    img[:, 30:] = np.linspace(0, 1, 40)[:, None] * 100.0  # step strength grows down the image
    img[5:10, 5:12] = 40.0  # an isolated weak blob
    edges = canny(img, low=60.0, high=250.0, sigma=0.0)
    # Sobel across a step of s is 4*s: strong below row ~25 (4s >= 250), weak above down to 4s >= 60
    column = edges[:, 29] | edges[:, 30]
    assert column[26:-1].all()  # strong
    assert column[8:26].all()  # weak, connected to the strong part
    assert not column[:3].any()  # below the low threshold
    assert not edges[:, :20].any()  # the isolated weak blob (4 * 40 = 160 < 250) is dropped
    assert canny(img, low=60.0, high=150.0, sigma=0.0)[:, :20].any()  # unless it is strong


def test_canny_ignores_smooth_ramp_and_blur_preserves_mean():
    ramp = np.tile(np.linspace(0, 255, 50), (30, 1))  # 5.2 per pixel: Sobel ~ 42 < low
    assert not canny(ramp, 100, 200).any()
    rng = np.random.default_rng(0)
    noise = rng.random((30, 30))
    assert gaussian_blur(noise, 2.0).mean() == pytest.approx(noise.mean(), abs=0.02)
    assert gaussian_blur(noise, 2.0).std() < noise.std() / 2
