"""Restarting a frame range redoes it one frame at a time: a failure keeps the old frames.

The "backend" here is a runner that writes a solid-colour PNG for each job (what a job would leave
in the staging folder) and fails on the frame the test names, so the test knows every byte.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from blender_scenes import add_camera, add_cube


@pytest.fixture
def frame_scene(empty_scene):
    scene = empty_scene
    add_camera(scene, location=(0.0, 0.0, 0.0))
    add_cube(scene, location=(0.0, 0.0, -6.0))
    scene.frame_start, scene.frame_end = 1, 3
    return scene


def solid_runner(sc_module, colour, fail_on=None):
    png = sc_module("core.png")
    remote_job = sc_module("core.remote_job")
    names = []

    def run(request, **kwargs):
        names.append(request.name)
        if request.name == fail_on:
            raise remote_job.JobFailed("the backend went away", "start it again")
        os.makedirs(request.output_dir, exist_ok=True)
        path = os.path.join(request.output_dir, f"{request.name}.png")
        with open(path, "wb") as fh:
            size = (request.params["height"], request.params["width"], 3)
            fh.write(png.encode_png(np.full(size, colour, np.uint8)))
        return remote_job.JobOutcome(job_id=request.name, model="m", files=[path], status={})

    return run, names


def frames_run(sc_module, scene, out, restart):
    stylize = sc_module("features.stylize")
    settings = sc_module("features.settings")
    frame_run = sc_module("blender.frame_run")
    job = settings.resolve(scene, defaults=settings.STYLIZE, prompt="x", server="http://127.0.0.1:1",
                           model="builtin:tiny", width=64, height=64, steps=1)
    options = frame_run.FrameOptions(consistency=False, restart=restart)
    return stylize.stylize_frames(scene, job, 1, 3, str(out), options=options, depth_range=(1.0, 20.0))


def colours(sc_module, out):
    png = sc_module("core.png")
    return {p: tuple(png.decode_png((out / p).read_bytes())[0, 0, :3]) for p in sorted(os.listdir(out))
            if p.startswith("frame_")}


def test_a_restart_that_fails_keeps_the_old_frames_it_did_not_redo(sc_module, frame_scene, tmp_path):
    base = sc_module("features.base")
    remote_job = sc_module("core.remote_job")
    out = tmp_path / "frames"
    first, _ = solid_runner(sc_module, (10, 10, 10))
    base.run_blocking(frames_run(sc_module, frame_scene, out, restart=False), runner=first)
    assert set(colours(sc_module, out).values()) == {(10, 10, 10)}

    again, names = solid_runner(sc_module, (200, 200, 200), fail_on="frame_0002")
    with pytest.raises(remote_job.JobFailed, match="went away"):
        base.run_blocking(frames_run(sc_module, frame_scene, out, restart=True), runner=again)
    assert names == ["frame_0001", "frame_0002"]
    assert colours(sc_module, out) == {"frame_0001.png": (200, 200, 200), "frame_0002.png": (10, 10, 10),
                                       "frame_0003.png": (10, 10, 10)}

    done, names = solid_runner(sc_module, (90, 90, 90))
    result = base.run_blocking(frames_run(sc_module, frame_scene, out, restart=True), runner=done)
    assert names == ["frame_0001", "frame_0002", "frame_0003"] and result.made == [1, 2, 3] and result.skipped == []
    assert set(colours(sc_module, out).values()) == {(90, 90, 90)}
