"""Stylized frames end to end: the installed add-on in bpy 5.0 against a real backend on builtin:tiny.

A range writes one PNG per frame and a record; later frames are warp + inpaint + refresh jobs; a
cancelled run resumes at the first missing frame without redoing earlier ones; the scene's frame and
render settings come back; the headless farm entry runs a range in its own process; one frame comes
back as an image on the camera's background and in the compositor.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from e2e_support import ADDON_MODULE, ROOT, scene_state

bpy = pytest.importorskip("bpy")

TINY = dict(model="builtin:tiny", width=64, height=64, steps=2, seed=11)


def strips_of(scene) -> object:
    """The scene's sequencer strips (``compat``: 4.x calls them ``sequences``)."""
    compat = importlib.import_module(ADDON_MODULE + ".blender.compat")
    return compat.sequencer_strips(scene.sequence_editor)


def job_spec(backend, job_id: str) -> dict:
    with urllib.request.urlopen(f"{backend.url}/v1/jobs/{job_id}/record") as response:
        return json.loads(response.read())["spec"]


def test_a_range_writes_frames_and_a_record_and_leaves_the_scene_as_it_was(api, backend, scene, tmp_path):
    scene.frame_set(7)  # evaluated: the animated camera is where frame 7 puts it
    scene.render.engine = "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in {
        e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items} else "BLENDER_EEVEE"
    before = scene_state(scene)
    out = tmp_path / "frames"
    result = api.stylize_frames(scene, 1, 3, str(out), prompt="a street", server=backend.url, strip=True,
                                video=True, **TINY)
    assert scene_state(scene) == before
    assert scene.frame_current == 7
    files = [out / f"frame_{f:04d}.png" for f in (1, 2, 3)]
    assert [Path(p) for p in result.files] == files and result.made == [1, 2, 3] and result.skipped == []
    png = importlib.import_module(ADDON_MODULE + ".core.png")
    for path in files:
        assert png.decode_png(path.read_bytes()).shape[:2] == (64, 64)
    record = json.loads(Path(result.record_path).read_text())
    assert Path(result.record_path).name == "scenecast_frames_0001-0003.json"
    assert record["status"] == "done" and record["range"] == [1, 3]
    settings = record["settings"]
    assert settings["seed"] == 11 and settings["consistency"] is True
    near, far = settings["depth_range"]
    assert 0 < near < far and settings["depth_source"] == "bounds over frames 1-24"
    frames = record["frames"]
    assert frames["1"]["mode"] == "generate"
    for f in ("2", "3"):
        assert frames[f]["mode"] in ("inpaint+refresh", "refresh")  # the dolly moves: a warp every frame
        assert isinstance(frames[f]["flicker"], float) and 0 <= frames[f]["hole_fraction"] < 1
        assert {"passes", "warp", "transport", "diffusion", "total"} <= set(frames[f]["timings"])
    assert record["flicker_mean"] == pytest.approx(np.mean([frames["2"]["flicker"], frames["3"]["flicker"]]))
    # What the backend ran: frame 1 a generate with depth + edges; later frames inpaint the warped
    # previous frame where the holes are, then refresh it, ControlNets on both; one seed throughout.
    first = job_spec(backend, frames["1"]["job_id"])
    assert [s["type"] for s in first["stages"]] == ["generate"]
    assert {u["type"] for u in first["stages"][0]["controlnets"]} == {"depth", "edges"}
    later = job_spec(backend, frames["2"]["job_id"])
    assert [s["type"] for s in later["stages"]][-1] == "img2img" and later["stages"][-1]["strength"] == 0.3
    assert all({u["type"] for u in s["controlnets"]} == {"depth", "edges"} for s in later["stages"])
    assert first["seed"] == later["seed"] == 11
    if frames["2"]["mode"] == "inpaint+refresh":
        assert later["stages"][0]["type"] == "inpaint" and later["stages"][0]["strength"] == 1.0
    # Nothing half-written, no staging left; the strip and the video.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in files] + ["scenecast_frames_0001-0003.json", "scenecast_frames_0001-0003.mp4"])
    strip = next(s for s in strips_of(scene) if s.name.startswith("Scenecast Frames"))
    assert importlib.import_module(ADDON_MODULE + ".blender.compat").strip_range(strip) == (1, 4)
    assert (out / "scenecast_frames_0001-0003.mp4").stat().st_size > 0


def test_a_cancelled_run_resumes_at_the_first_missing_frame(api, backend, scene, tmp_path):
    out = tmp_path / "frames"
    cancel = threading.Event()
    done = []

    def cancel_in_second_frame(event) -> None:
        if event.type == "ready":  # the job's results were handed over: the frame is being finished
            done.append(event)
        elif event.type == "step" and done:
            cancel.set()  # during frame 2's job, or (had it finished already) before frame 3

    before = scene_state(scene)
    with pytest.raises(api.JobFailed) as info:
        api.stylize_frames(scene, 1, 3, str(out), prompt="a street", server=backend.url, on_event=cancel_in_second_frame,
                           cancel=cancel, **TINY)
    assert info.value.status == "cancelled"
    assert scene_state(scene) == before
    kept = sorted(p.name for p in out.glob("frame_*.png"))
    assert kept in (["frame_0001.png"], ["frame_0001.png", "frame_0002.png"])
    assert sorted(p.name for p in out.iterdir()) == kept + ["scenecast_frames_0001-0003.json"]  # nothing partial
    record = json.loads((out / "scenecast_frames_0001-0003.json").read_text())
    assert record["status"] == "cancelled" and len(record["frames"]) == len(kept)
    jobs = {f: e["job_id"] for f, e in record["frames"].items()}
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")}

    # Other settings cannot continue these frames: the error says what to do.
    errors = importlib.import_module(ADDON_MODULE + ".core.errors")
    with pytest.raises(errors.ScenecastError) as bad:
        api.stylize_frames(scene, 1, 3, str(out), prompt="another street", server=backend.url, **TINY)
    assert "prompt" in bad.value.message and "another output folder" in bad.value.fix

    result = api.stylize_frames(scene, 1, 3, str(out), prompt="a street", server=backend.url, **TINY)
    missing = list(range(len(kept) + 1, 4))
    assert result.made == missing and result.skipped == list(range(1, len(kept) + 1))
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png") if p.name in mtimes} == mtimes
    record = json.loads(Path(result.record_path).read_text())
    assert {f: record["frames"][f]["job_id"] for f in jobs} == jobs and record["status"] == "done"
    assert [r["resumed_at"] for r in record["runs"]] == [1, missing[0]]
    assert record["frames"][str(missing[0])]["mode"] != "generate"  # warped from the previous frame's PNG
    assert scene_state(scene) == before
    # All done: another run makes nothing.
    again = api.stylize_frames(scene, 1, 3, str(out), prompt="a street", server=backend.url, **TINY)
    assert again.made == [] and again.skipped == [1, 2, 3]


def test_without_consistency_every_frame_is_its_own_generate_with_the_same_seed(api, backend, scene, tmp_path):
    result = api.stylize_frames(scene, 4, 5, str(tmp_path / "plain"), prompt="a street", server=backend.url,
                                consistency=False, depth_range=(0.5, 60.0), **TINY)
    frames = result.record["frames"]
    assert [frames[f]["mode"] for f in ("4", "5")] == ["generate", "generate"]
    assert isinstance(frames["5"]["flicker"], float)  # measured all the same: the baseline
    assert result.record["settings"]["depth_range"] == [0.5, 60.0]
    assert result.record["settings"]["depth_source"] == "given"
    specs = [job_spec(backend, frames[f]["job_id"]) for f in ("4", "5")]
    assert [s["stages"][0]["type"] for s in specs] == ["generate", "generate"]
    assert specs[0]["seed"] == specs[1]["seed"] == 11


def test_the_headless_entry_runs_a_range_in_its_own_process(scenecast, backend, scene, tmp_path):
    blend = tmp_path / "shot.blend"
    bpy.data.libraries.write(str(blend), {scene}, fake_user=True)
    out = tmp_path / "farm"
    cmd = [sys.executable, str(ROOT / "examples" / "stylize_frames.py"), "--blend", str(blend), "--scene", scene.name,
           "--start", "2", "--end", "3", "--out", str(out), "--prompt", "a street", "--server", backend.url,
           "--model", "builtin:tiny", "--size", "64", "--steps", "2", "--seed", "5"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["frame_0002.png", "frame_0003.png", "scenecast_frames_0002-0003.json"]
    record = json.loads((out / "scenecast_frames_0002-0003.json").read_text())
    assert record["range"] == [2, 3] and record["settings"]["seed"] == 5
    assert record["settings"]["shot_range"] == [1, 24]  # the whole shot's depth range, as every machine computes it
    assert "flicker" in proc.stdout and "made [2, 3]" in proc.stdout
    # The same range again: nothing to do, the farm can simply re-run a machine's command.
    proc = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "made none" in proc.stdout, proc.stderr[-3000:]


def test_stylize_frame_returns_an_image_on_the_camera_background_and_in_the_compositor(api, backend, scene):
    image = api.stylize_frame(scene, prompt="a street", server=backend.url, init="clay", refine=0.3,
                              camera_background=True, compositor=True, **TINY)
    assert isinstance(image, bpy.types.Image) and tuple(image.size) == (64, 64)
    assert os.path.isfile(bpy.path.abspath(image.filepath)) and image["scenecast_job"]
    backgrounds = [bg.image for bg in scene.camera.data.background_images]
    assert backgrounds == [image] and scene.camera.data.show_background_images
    tree = importlib.import_module(ADDON_MODULE + ".blender.compat").compositor_node_group(scene)
    assert tree.nodes["Scenecast Image"].image == image
    assert any(link.from_node.name == "Scenecast Image" for link in tree.links)
    spec = job_spec(backend, image["scenecast_job"])
    assert [(s["type"], s.get("image"), s["strength"]) for s in spec["stages"]] == [
        ("img2img", "clay", 0.6), ("img2img", None, 0.3)]
    # Again: the camera keeps one Scenecast background, the compositor one node.
    second = api.stylize_frame(scene, prompt="a street", server=backend.url, camera_background=True,
                               compositor=True, **TINY)
    assert [bg.image for bg in scene.camera.data.background_images] == [second]
    assert tree.nodes["Scenecast Image"].image == second
    if not tree.is_embedded_data:  # 5.x: a node group of its own (4.x: the scene's own tree)
        bpy.data.node_groups.remove(tree)


def test_the_operators_block_in_background_mode(scenecast, backend, scene, prefs, tmp_path):
    prefs.server_url = backend.url
    s = scene.scenecast
    s.prompt, s.model, s.width, s.height, s.steps, s.seed = "a quiet alley", "builtin:tiny", 64, 64, 2, 3
    f = scene.scenecast_frames
    f.camera_background, f.refine = True, 0.2
    f.use_scene_range, f.frame_start, f.frame_end = False, 3, 4
    f.output_dir, f.add_strip = str(tmp_path / "op_frames"), True
    before = {i.name for i in bpy.data.images}
    with bpy.context.temp_override(scene=scene):
        assert bpy.ops.scenecast.stylize_frame() == {"FINISHED"}
        assert bpy.ops.scenecast.stylize_frames() == {"FINISHED"}
    new = [i for i in bpy.data.images if i.name not in before]
    assert len(new) == 1 and new[0].get("scenecast_job")
    assert [bg.image for bg in scene.camera.data.background_images] == new
    assert sorted(p.name for p in (tmp_path / "op_frames").iterdir()) == [
        "frame_0003.png", "frame_0004.png", "scenecast_frames_0003-0004.json"]
    assert any(st.name.startswith("Scenecast Frames") for st in strips_of(scene))


def test_the_job_driver_runs_each_frame_in_the_worker_while_the_main_thread_stays_free(api, backend, scene, tmp_path):
    """What the modal Stylize Frames does per timer tick, driven by hand (bpy as a module has no event
    loop): passes and warp on the main thread, the job in the worker, the result back on the main thread,
    each finished frame shown in the "Scenecast Frame" image."""
    job_operator = addon_module("ui.job_operator")
    stylize = addon_module("features.stylize")
    settings = addon_module("features.settings")
    before = scene_state(scene)
    job = settings.resolve(scene, defaults=settings.STYLIZE, prompt="a street", server=backend.url, **TINY)
    run = stylize.stylize_frames(scene, job, 1, 2, str(tmp_path / "ui"), show=True)
    driver = job_operator.JobDriver(run)
    assert driver.begin() is None
    statuses, ending = [driver.status], None
    while ending is None:
        bpy.data.meshes.remove(bpy.data.meshes.new("main thread stays usable"))  # while the job runs
        driver.job.thread.join(120)  # the tick after the job: its outcome goes into the feature
        ending = driver.tick()
        statuses.append(driver.status)
    assert ending.finished, ending.reports
    result = ending.result
    assert result.record["status"] == "done" and result.made == [1, 2]
    assert statuses[0] == "frame 1/2: generate" and statuses[1].startswith("frame 2/2: ")
    assert tuple(bpy.data.images["Scenecast Frame"].size) == (64, 64)
    after = scene_state(scene)
    assert after.pop("images") == sorted(before.pop("images") + ["Scenecast Frame"])
    assert after == before


def addon_module(name: str):
    return importlib.import_module(f"{ADDON_MODULE}.{name}")
