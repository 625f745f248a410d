"""Frame sequences without Blender: later frames' stages, the warp step, flicker, files and the record."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from addon.core import frame_sequence as seq
from addon.core.errors import ScenecastError
from addon.core.jobspec import build_job_spec

CN = [{"image": "depth", "type": "depth", "weight": 1.0}, {"image": "edges", "type": "edges", "weight": 0.6, "end": 0.8}]
FIELDS = {"negative_prompt": "blurry", "steps": 12, "guidance": 6.0}


def spec_of(preset: dict) -> dict:
    return build_job_spec(model="builtin:tiny", prompt="x", seed=3, width=64, height=64, preset=preset)


def test_a_later_frame_inpaints_the_holes_of_the_warped_frame_then_refreshes_it():
    preset = seq.later_stages(CN, FIELDS, has_holes=True, hole_strength=1.0, refresh_strength=0.3)
    spec = spec_of(preset)
    inpaint, refresh = spec["stages"]
    assert (inpaint["type"], inpaint["image"], inpaint["mask"], inpaint["strength"]) == ("inpaint", "warped", "holes", 1.0)
    assert (refresh["type"], refresh.get("image"), refresh["strength"]) == ("img2img", None, 0.3)
    assert inpaint["controlnets"] == refresh["controlnets"] == CN
    assert (spec["steps"], spec["guidance"], spec["negative_prompt"]) == (12, 6.0, "blurry")


def test_without_holes_only_the_refresh_runs_and_without_either_no_job():
    spec = spec_of(seq.later_stages(CN, FIELDS, has_holes=False, hole_strength=1.0, refresh_strength=0.3))
    assert [(s["type"], s.get("image")) for s in spec["stages"]] == [("img2img", "warped")]
    spec = spec_of(seq.later_stages(CN, FIELDS, has_holes=True, hole_strength=0.8, refresh_strength=0.0))
    assert [(s["type"], s["strength"]) for s in spec["stages"]] == [("inpaint", 0.8)]
    assert seq.later_stages(CN, FIELDS, has_holes=False, hole_strength=1.0, refresh_strength=0.0) is None


def test_main_stage_settings_take_the_first_stage_with_controlnets():
    first = build_job_spec(model="m", prompt="x", preset="stylize-depth-normal-refine", width=64, height=64)
    controlnets, fields = seq.main_stage_settings(first)
    assert [u["type"] for u in controlnets] == ["depth", "normal"]
    assert fields["steps"] == 25 and fields["scheduler"] == "dpmpp_2m_karras"


def shifted_scene(shift: int, h: int = 16, w: int = 24):
    """Frame t shows frame t−1 moved ``shift`` pixels right; Blender's vector: prev − cur = (−shift, 0)."""
    rng = np.random.default_rng(0)
    prev = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    vector = np.zeros((h, w, 4), np.float32)
    vector[..., 0] = -shift
    depth = np.full((h, w), 5.0, np.float32)
    return prev, vector, depth


def test_the_warp_step_moves_the_previous_frame_along_the_motion_and_masks_what_came_into_view():
    prev, vector, depth = shifted_scene(2)
    step = seq.consistency_inputs(prev, vector, depth, depth, dilate_px=1)
    assert step.warped.dtype == np.uint8 and step.warped.shape == prev.shape
    np.testing.assert_array_equal(step.warped[:, 2:], prev[:, :-2])
    # Columns 0-1 have no source in frame t−1 (column −1.5 and beyond is outside); dilated by 1 px.
    assert not step.valid[:, :2].any() and step.valid[:, 2:].all()
    assert step.holes[:, :3].all() and not step.holes[:, 3:].any()
    assert step.hole_fraction == pytest.approx(3 / 24)
    mask = step.mask_image()
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}


def test_depth_that_disagrees_is_a_hole_too():
    prev, vector, depth = shifted_scene(0)
    depth_prev = depth.copy()
    depth_prev[4:8, 4:8] = 2.0  # something in front in frame t−1 that is gone in frame t
    step = seq.consistency_inputs(prev, vector, depth, depth_prev, dilate_px=0)
    assert step.holes[4:8, 4:8].all() and step.holes.sum() == 16


def test_flicker_is_zero_for_a_frame_that_is_the_warped_previous_and_grows_with_change():
    prev, vector, depth = shifted_scene(3)
    step = seq.consistency_inputs(prev, vector, depth, depth)
    assert seq.frame_flicker(step.warped, prev, step) == pytest.approx(0.0)
    noisy = np.clip(step.warped.astype(int) + 10, 0, 255).astype(np.uint8)
    assert 5.0 < seq.frame_flicker(noisy, prev, step) <= 10.0


def test_a_previous_frame_of_another_size_names_the_fix():
    prev, vector, depth = shifted_scene(0)
    with pytest.raises(ScenecastError) as info:
        seq.consistency_inputs(prev[:8], vector, depth, depth)
    assert "same width and height" in info.value.fix


def test_files_ranges_and_the_first_missing_frame(tmp_path):
    assert seq.frame_path(str(tmp_path), 7).endswith("frame_0007.png")
    assert os.path.basename(seq.record_path(str(tmp_path), 1, 48)) == "scenecast_frames_0001-0048.json"
    assert seq.check_range(3, 5) == [3, 4, 5]
    with pytest.raises(ValueError, match="empty"):
        seq.check_range(5, 3)
    for f in (1, 2, 4):
        (tmp_path / f"frame_{f:04d}.png").write_bytes(b"x")
    assert seq.first_missing(str(tmp_path), [1, 2, 3, 4]) == 3
    assert seq.first_missing(str(tmp_path), [1, 2]) is None


def test_the_record_round_trips_and_names_settings_that_cannot_continue(tmp_path):
    settings = {"prompt": "a", "seed": 1, "depth_range": [0.5, 40.0], "consistency": True}
    record = seq.new_record(settings, 1, 3)
    record["frames"]["2"] = {"flicker": 4.0}
    record["frames"]["3"] = {"flicker": 6.0}
    path = seq.record_path(str(tmp_path), 1, 3)
    seq.save_record(path, record)
    loaded = seq.load_record(path)
    assert loaded is not None and loaded["flicker_mean"] == 5.0 and loaded["settings"] == settings
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
    assert seq.resume_conflicts(loaded, settings) == []
    assert seq.resume_conflicts(loaded, {**settings, "seed": 2, "depth_range": (0.5, 41.0)}) == ["seed", "depth_range"]
    assert seq.load_record(str(tmp_path / "none.json")) is None
    (tmp_path / "bad.json").write_text(json.dumps({"something": "else"}))
    with pytest.raises(ScenecastError):
        seq.load_record(str(tmp_path / "bad.json"))
    assert seq.clean_float(float("nan")) is None and seq.clean_float(2.5) == 2.5
