"""Features use a job's pixels at once and make sure of its PNG before they report done.

``run_job`` hands results over at protocol 1.1's ``ready`` and a ``ResultSaver`` thread writes the PNG
once the backend has it. Here the runner gives each job's pixels with a real ``ResultSaver`` whose
two backend calls (status, result bytes) come from :class:`HeldPngs`, a stand-in for the backend's PNG
write that the test controls (fault injection, like tests/addon_core/fake_backend.py): a PNG is
"written" when the test releases it, after a chosen number of status polls, or its save fails as on a
full disk. Nothing waits on the clock; the savers' deadline only turns a hang into a failure.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

import bpy
import numpy as np
import pytest

from test_frame_restart import frame_scene, frames_run  # noqa: F401  (fixture)
from test_projection import pixels, psnr
from test_texturing_chain import SIZE, TEX, oracle_scene  # noqa: F401  (fixture)

GUARD = 120.0


class HeldPngs:
    """What a ResultSaver asks the backend: a job is "running" until released (by the test, or by its
    ``polls``-th status poll), then "done" with its PNG, or "failed" (``output_error``) when ``fail``."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict] = {}

    def add(self, job_id: str, data: bytes, polls: int | None = None, fail: bool = False) -> None:
        self.jobs[job_id] = {"png": data, "released": threading.Event(), "polls": polls, "fail": fail, "seen": 0}

    def release(self, job_id: str) -> None:
        self.jobs[job_id]["released"].set()

    def status(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        job["seen"] += 1
        if job["polls"] is not None and job["seen"] >= job["polls"]:
            job["released"].set()
        if not job["released"].is_set():
            return {"id": job_id, "status": "running"}
        if job["fail"]:
            return {"id": job_id, "status": "failed", "error": {
                "code": "output_error", "message": "could not write the results: No space left on device",
                "fix": "check that outputs/ is writable and has space"}}
        return {"id": job_id, "status": "done", "results": [{"index": 0}]}

    def result(self, job_id: str, index: int) -> bytes:
        return self.jobs[job_id]["png"]


def _savers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scenecast-save-")]


def _outcome(sc_module, held: HeldPngs, job_id: str, rgb: np.ndarray, path: str, **hold):
    remote_job = sc_module("core.remote_job")
    saver_mod = sc_module("core.result_saver")
    data = sc_module("core.png").encode_png(rgb, text={"job": job_id})
    held.add(job_id, data, **hold)
    saver = saver_mod.ResultSaver(held, job_id, [path], deadline=time.monotonic() + GUARD).start()
    return remote_job.JobOutcome(job_id=job_id, model="oracle", files=[path], status={"status": "running"},
                                 pixels=[rgb], saver=saver)


def _texturing(sc_module, tmp_path, mode="sequential"):
    texturing = sc_module("features.texturing")
    return texturing, texturing.TextureSettings(
        base_params={"prompt": "x", "seed": 0, "width": SIZE, "height": SIZE, "preview_every": 0},
        request_fields={"server": "http://127.0.0.1:1", "output_dir": str(tmp_path)},
        texture_size=(TEX, TEX), weight_params={"feather_px": 2.0}, mask_grow_px=2, mode=mode,
    )


def test_texturing_uses_the_pixels_and_waits_for_every_views_png_at_the_end(oracle_scene, sc_module, tmp_path):  # noqa: F811
    scene, target, oracle, known = oracle_scene
    base = sc_module("features.base")
    texturing, settings = _texturing(sc_module, tmp_path)
    held, paths, missing_at_next_job = HeldPngs(), [], []
    views = 3

    def run(request, **kwargs):
        index = int(re.search(r"_view(\d+)$", request.name).group(1))
        missing_at_next_job.extend(not os.path.exists(p) for p in paths)  # earlier views' PNGs: still held
        camera = scene.objects[f"Scenecast View {index}"]
        target.hide_render, oracle.hide_render = True, False
        try:
            rgb = sc_module("blender.passes").render_passes(scene, camera, (SIZE, SIZE), color=True,
                                                             color_samples=1).color
        finally:
            target.hide_render, oracle.hide_render = False, True
        paths.append(str(tmp_path / f"{request.name}.png"))
        outcome = _outcome(sc_module, held, f"job-{index}", rgb, paths[-1])
        if index == views:  # the last job: now let every PNG be written; the run must wait for them
            for job_id in held.jobs:
                held.release(job_id)
        return outcome

    result = base.run_blocking(texturing.texture_objects(scene, [target], settings, views=views,
                                                         elevations=(-25.0, 25.0)), runner=run)
    assert len(paths) == views and missing_at_next_job and all(missing_at_next_job)  # saves overlapped the jobs
    assert result.files == paths and all(os.path.isfile(p) for p in paths)  # ... and were waited for
    png = sc_module("core.png")
    for i, path in enumerate(paths, start=1):
        assert png.read_png_text(open(path, "rb").read()) == {"job": f"job-{i}"}  # the backend's bytes
    seen = pixels(bpy.data.images["Ball Scenecast.weight"])[..., 0] > 0  # the pixels were projected:
    assert seen.mean() > 0.5 and psnr(pixels(result[target])[..., :3][seen], known[seen]) >= 25.0  # the known texture
    assert _savers() == []


def test_a_views_failed_save_fails_the_texturing_run_with_the_fix(oracle_scene, sc_module, tmp_path):  # noqa: F811
    scene, target, oracle, _ = oracle_scene
    base = sc_module("features.base")
    remote_job = sc_module("core.remote_job")
    texturing, settings = _texturing(sc_module, tmp_path)
    held = HeldPngs()

    def run(request, **kwargs):
        rgb = np.full((SIZE, SIZE, 3), 128, np.uint8)
        return _outcome(sc_module, held, request.name, rgb, str(tmp_path / f"{request.name}.png"), polls=1,
                        fail=request.name.endswith("_view01"))

    with pytest.raises(remote_job.JobFailed) as info:
        base.run_blocking(texturing.texture_objects(scene, [target], settings, views=2), runner=run)
    assert "could not save" in info.value.message and "writable" in info.value.fix
    assert not [o for o in scene.objects if o.name.startswith("Scenecast View")] and _savers() == []
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_a_cancelled_texturing_run_stops_its_savers(oracle_scene, sc_module, tmp_path):  # noqa: F811
    scene, target, oracle, _ = oracle_scene
    base = sc_module("features.base")
    remote_job = sc_module("core.remote_job")
    texturing, settings = _texturing(sc_module, tmp_path)
    held, calls = HeldPngs(), []

    def run(request, **kwargs):
        calls.append(request.name)
        if len(calls) == 2:
            raise remote_job.JobCancelled("cancelled by the test")
        rgb = np.full((SIZE, SIZE, 3), 128, np.uint8)
        return _outcome(sc_module, held, request.name, rgb, str(tmp_path / f"{request.name}.png"))  # never released

    with pytest.raises(remote_job.JobCancelled):
        base.run_blocking(texturing.texture_objects(scene, [target], settings, views=2), runner=run)
    assert _savers() == [] and not [p for p in os.listdir(tmp_path) if p.endswith(".png")]


def test_frames_move_each_png_once_saved_while_the_next_frame_runs(sc_module, frame_scene, tmp_path):  # noqa: F811
    base = sc_module("features.base")
    out, held, placed_before_next_job = tmp_path / "frames", HeldPngs(), []

    def run(request, **kwargs):
        frame = int(request.name.rsplit("_", 1)[1])
        if frame > 1:  # the previous frame's PNG is moved in after this job: its save overlapped it
            placed_before_next_job.append((out / f"frame_{frame - 1:04d}.png").exists())
        rgb = np.full((request.params["height"], request.params["width"], 3), 77, np.uint8)
        path = os.path.join(request.output_dir, f"{request.name}.png")
        return _outcome(sc_module, held, request.name, rgb, path, polls=3)  # written at the 3rd poll

    result = base.run_blocking(frames_run(sc_module, frame_scene, out, restart=False), runner=run)
    png = sc_module("core.png")
    assert result.made == [1, 2, 3] and placed_before_next_job == [False, False]
    for frame in (1, 2, 3):
        data = (out / f"frame_{frame:04d}.png").read_bytes()
        assert png.read_png_text(data) == {"job": f"frame_{frame:04d}"}  # the backend's PNG, moved whole
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{f:04d}.png" for f in (1, 2, 3)] + [
        "scenecast_frames_0001-0003.json"]
    assert _savers() == []


def test_a_frame_sequence_cancelled_during_a_job_keeps_the_frame_before(sc_module, frame_scene, tmp_path):  # noqa: F811
    base = sc_module("features.base")
    remote_job = sc_module("core.remote_job")
    out, held = tmp_path / "frames", HeldPngs()

    def run(request, **kwargs):
        if request.name == "frame_0002":
            raise remote_job.JobCancelled("cancelled by the test")  # frame 1's PNG is still held here
        rgb = np.full((request.params["height"], request.params["width"], 3), 77, np.uint8)
        path = os.path.join(request.output_dir, f"{request.name}.png")
        return _outcome(sc_module, held, request.name, rgb, path, polls=3)

    with pytest.raises(remote_job.JobCancelled):
        base.run_blocking(frames_run(sc_module, frame_scene, out, restart=False), runner=run)
    assert sorted(p.name for p in out.iterdir()) == ["frame_0001.png", "scenecast_frames_0001-0003.json"]
    record = json.loads((out / "scenecast_frames_0001-0003.json").read_text())
    assert record["status"] == "cancelled" and list(record["frames"]) == ["1"]
    assert _savers() == []


def test_a_frames_failed_save_fails_the_run_and_leaves_no_frame(sc_module, frame_scene, tmp_path):  # noqa: F811
    base = sc_module("features.base")
    remote_job = sc_module("core.remote_job")
    out, held = tmp_path / "frames", HeldPngs()

    def run(request, **kwargs):
        rgb = np.full((request.params["height"], request.params["width"], 3), 77, np.uint8)
        path = os.path.join(request.output_dir, f"{request.name}.png")
        return _outcome(sc_module, held, request.name, rgb, path, polls=1, fail=request.name == "frame_0002")

    with pytest.raises(remote_job.JobFailed) as info:
        base.run_blocking(frames_run(sc_module, frame_scene, out, restart=False), runner=run)
    assert "No space left" in info.value.message and "writable" in info.value.fix
    assert sorted(p.name for p in out.iterdir()) == ["frame_0001.png", "scenecast_frames_0001-0003.json"]
    assert _savers() == []
