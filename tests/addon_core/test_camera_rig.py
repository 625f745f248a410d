import math

import numpy as np
import pytest

from addon.core.camera_rig import bounding_sphere, fit_distance, look_at, orbit_rig


def test_look_at_front_view_matches_blenders_front_camera():
    """A camera at −Y looking at the origin: x is world +X (right), y is world +Z (up), it looks along +Y."""
    m = look_at((0, -10, 0), (0, 0, 0))
    np.testing.assert_allclose(m[:3, 0], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(m[:3, 1], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(-m[:3, 2], [0, 1, 0], atol=1e-12)  # the view direction is −z
    np.testing.assert_allclose(m[:3, 3], [0, -10, 0])


@pytest.mark.parametrize("eye", [(0, 0, 5), (0, 0, -5), (3, -2, 1), (-1, 4, -2)])
def test_look_at_is_a_rotation_that_points_at_the_target(eye):
    target = np.array([0.5, -0.25, 0.1])
    m = look_at(eye, target)
    r = m[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    to_target = (target - np.asarray(eye, float)) / np.linalg.norm(target - np.asarray(eye, float))
    np.testing.assert_allclose(-r[:, 2], to_target, atol=1e-12)


def test_fit_distance_puts_the_sphere_inside_the_view():
    d = fit_distance(1.0, 90.0, margin=1.0)
    assert d == pytest.approx(math.sqrt(2.0))  # sin(45°) = r / d: the sphere touches the view's sides
    with pytest.raises(ValueError, match="no size"):
        fit_distance(0.0, 40.0)


def test_orbit_rig_spreads_views_and_cycles_elevations():
    mats = orbit_rig((1, 2, 3), 2.0, views=4, elevations=(0.0, 30.0), fov_deg=40.0)
    eyes = np.array([m[:3, 3] for m in mats]) - np.array([1, 2, 3])
    dist = np.linalg.norm(eyes, axis=1)
    np.testing.assert_allclose(dist, fit_distance(2.0, 40.0))
    elev = np.degrees(np.arcsin(eyes[:, 2] / dist))
    np.testing.assert_allclose(elev, [0, 30, 0, 30], atol=1e-9)
    azim = np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0]))
    np.testing.assert_allclose(azim, [-90, 0, 90, 180], atol=1e-9)  # view 0 is the front (−Y)
    for m in mats:  # each looks at the centre
        to_c = np.array([1, 2, 3]) - m[:3, 3]
        np.testing.assert_allclose(-m[:3, 2], to_c / np.linalg.norm(to_c), atol=1e-12)


def test_orbit_rig_rejects_nonsense():
    with pytest.raises(ValueError, match="at least 1"):
        orbit_rig((0, 0, 0), 1.0, views=0)
    with pytest.raises(ValueError, match="between -90 and 90"):
        orbit_rig((0, 0, 0), 1.0, views=2, elevations=(100.0,))


def test_bounding_sphere_holds_every_point():
    pts = np.random.default_rng(0).normal(size=(500, 3))
    c, r = bounding_sphere(pts)
    assert np.all(np.linalg.norm(pts - c, axis=1) <= r + 1e-12)
