"""ControlNet units: weight, start/end and mode really change the result; swapping ControlNets keeps
the base model loaded."""

from __future__ import annotations

import numpy as np
import pytest

from backend.pipelines import run_job
from backend.spec import JobSpec

from _tiny import RecordingProgress

SIZE = 64


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {k: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for k in ("a", "b")}


def run(manager, images, units: list[dict]) -> np.ndarray:  # noqa: ANN001
    s = JobSpec.model_validate({"model": "builtin:tiny", "prompt": "x", "width": SIZE, "height": SIZE, "steps": 5,
                                "seed": 3, "stages": [{"type": "generate", "controlnets": units}]})
    return run_job(s, images, manager, RecordingProgress()).images[0]


def test_weight_zero_equals_no_controlnet(manager, images) -> None:  # noqa: ANN001
    none = run(manager, images, [])
    zero = run(manager, images, [{"image": "a", "type": "depth", "weight": 0.0}])
    full = run(manager, images, [{"image": "a", "type": "depth", "weight": 1.0}])
    assert np.array_equal(none, zero)
    assert not np.array_equal(none, full)


def test_weight_start_end_and_mode_each_matter(manager, images) -> None:  # noqa: ANN001
    unit = {"image": "a", "type": "depth"}
    outs = {
        "full": run(manager, images, [unit]),
        "half_weight": run(manager, images, [{**unit, "weight": 0.5}]),
        "late_start": run(manager, images, [{**unit, "start": 0.4}]),
        "early_end": run(manager, images, [{**unit, "end": 0.6}]),
        "prompt": run(manager, images, [{**unit, "mode": "prompt"}]),
        "control": run(manager, images, [{**unit, "mode": "control"}]),
    }
    keys = list(outs)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not np.array_equal(outs[a], outs[b]), (a, b)


def test_unit_outside_its_window_equals_no_controlnet(manager, images) -> None:  # noqa: ANN001
    """With 5 steps, start=0.9 leaves no step where the unit is active."""
    assert np.array_equal(run(manager, images, []), run(manager, images, [{"image": "a", "type": "depth", "start": 0.9}]))


def test_control_image_content_matters(manager, images) -> None:  # noqa: ANN001
    a = run(manager, images, [{"image": "a", "type": "depth"}])
    b = run(manager, images, [{"image": "b", "type": "depth"}])
    assert not np.array_equal(a, b)


def test_swapping_controlnets_reuses_the_loaded_base(manager, images) -> None:  # noqa: ANN001
    run(manager, images, [{"image": "a", "type": "depth"}])
    unet = manager.base("builtin:tiny").unet
    run(manager, images, [{"image": "a", "type": "normal"}, {"image": "b", "type": "canny"}])
    assert manager.base("builtin:tiny").unet is unet
    cached = set(manager.cache.keys())
    assert {("controlnet", "builtin:tiny-controlnet-depth"), ("controlnet", "builtin:tiny-controlnet-normal"),
            ("controlnet", "builtin:tiny-controlnet-canny")} <= cached
