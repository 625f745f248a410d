"""Reference images end to end: the installed add-on (bpy 5.0) against a real backend on builtin:tiny.

Generate with a reference image file; Texture Objects in synchronized mode with one (every view in one
texture_sync job); Texture Objects and Stylize Frames with reference="first view":
the first job has no reference, every later job's spec carries one (read from the job records), and
the backend ran it (the record's resolved stage lists the IP-Adapter)."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


def job_record(url: str, job_id: str) -> dict:
    with urllib.request.urlopen(f"{url}/v1/jobs/{job_id}/record") as response:
        return json.loads(response.read())


def ran_references(record: dict) -> list:
    """The references the backend resolved and ran, from the record's stage entries."""
    text = json.dumps({k: v for k, v in record.items() if k != "spec"})
    assert "stages" in text, record.keys()
    stages = next(v for v in _walk(record) if isinstance(v, dict) and "steps_run" in v and "reference" in v)
    return stages["reference"]


def refs(stage: dict) -> list[tuple[str, float]]:
    """A stage's reference entries as (image key, weight)."""
    return [(r["image"], r["weight"]) for r in stage.get("reference") or []]


def _walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _write_png(path, rgb: np.ndarray) -> str:
    image = bpy.data.images.new("ref_src", rgb.shape[1], rgb.shape[0])
    rgba = np.ones((*rgb.shape[:2], 4), dtype=np.float32)
    rgba[..., :3] = rgb[::-1] / 255.0
    image.pixels.foreach_set(rgba.ravel())
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return str(path)


@pytest.mark.parametrize(("model", "adapter"), [("builtin:tiny", "builtin:tiny-ip-adapter"),
                                              ("builtin:tiny-sdxl", "builtin:tiny-ip-adapter"),
                                              ("builtin:tiny-flux", "builtin:tiny-flux-redux")])
def test_generate_with_a_reference_image_file(api, backend, scene, tmp_path, model, adapter):
    """With the default depth ControlNet unit and a reference image, on each family that takes one."""
    rgb = np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    path = _write_png(tmp_path / "style.png", rgb)
    tiny = dict(model=model, width=64, height=64, steps=2, seed=7, server=backend.url)
    plain = api.generate(scene, prompt="a rainy street", **tiny)[0]
    styled = api.generate(scene, prompt="a rainy street", reference=path, reference_weight=1.0, **tiny)[0]
    record = job_record(backend.url, styled["scenecast_job"])
    assert refs(record["spec"]["stages"][0]) == [("reference", 1.0)]
    assert ran_references(record) == [{"image": "reference", "model": adapter, "weight": 1.0,
                                       "start": 0.0, "end": 1.0}]
    assert record["spec"]["stages"][0]["controlnets"], "the default depth unit ran alongside"
    a, b = (np.asarray(img.pixels[:]) for img in (plain, styled))
    assert np.abs(a - b).mean() > 0.0005, "the reference did not change the image"
    with pytest.raises(ValueError, match="first view"):
        api.generate(scene, prompt="x", reference="first view", **tiny)


@pytest.mark.parametrize("mode", ["synchronized", "separate"])
def test_a_first_view_reference_in_one_job_modes_is_refused_before_any_render(api, backend, scene, mode):
    """All views are one job there: no view's result exists before the others (a fixed image works)."""
    cameras = {o.name for o in scene.objects if o.type == "CAMERA"}
    images = set(bpy.data.images.keys())
    with pytest.raises(ValueError, match="'first view' needs the sequential mode.*mode='sequential'"):
        api.texture_objects([scene.objects["Car"]], prompt="rusty metal", views=3, server=backend.url,
                            model="builtin:tiny", size=64, steps=2, reference="first view", mode=mode)
    assert {o.name for o in scene.objects if o.type == "CAMERA"} == cameras
    assert set(bpy.data.images.keys()) == images  # no pass was rendered


@pytest.mark.parametrize(("model", "adapter"), [("builtin:tiny", "builtin:tiny-ip-adapter"),
                                              ("builtin:tiny-flux", "builtin:tiny-flux-redux")])
def test_texture_objects_synchronized_with_a_reference_image(api, backend, scene, tmp_path, model, adapter):
    """One texture_sync job carries the reference image and its weight; the backend ran it on every view
    (the views differ from the same run without it)."""
    car = scene.objects["Car"]
    path = _write_png(tmp_path / "style.png", np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    tiny = dict(prompt="rusty metal", views=2, server=backend.url, model=model, size=64, steps=2, seed=5,
                texture_size=32, mode="synchronized")
    runs = []
    try:
        runs.append(api.texture_objects([car], **tiny))
        a = np.asarray(runs[0][car].pixels[:])  # before the next run, which may write into the same image
        runs.append(api.texture_objects([car], reference=path, reference_weight=0.9, **tiny))
        plain, styled = (r.views[0]["job_id"] for r in runs)
        assert {v["job_id"] for v in runs[1].views} == {styled}  # every view in the one job
        record = job_record(backend.url, styled)
        stage = record["spec"]["stages"][0]
        assert stage["type"] == "texture_sync" and refs(stage) == [("reference", 0.9)]
        assert ran_references(record) == [{"image": "reference", "model": adapter, "weight": 0.9,
                                           "start": 0.0, "end": 1.0}]
        assert len(record["inputs"]["reference"]) == 64  # the image went with the job (its sha256)
        assert refs(job_record(backend.url, plain)["spec"]["stages"][0]) == []
        b = np.asarray(runs[1][car].pixels[:])
        assert np.abs(a - b).mean() > 0.0005, "the reference did not change the texture"
    finally:  # leave the names free for the texture tests that come after (they expect "Car Scenecast")
        api.restore_materials([car])
        for name in {image.name for result in runs for image in result.values()}:
            bpy.data.images.remove(bpy.data.images[name])
        for material in [m for m in bpy.data.materials if m.name.startswith("Car Scenecast")]:
            bpy.data.materials.remove(material)


def test_texture_objects_holds_the_first_views_look(api, backend, scene):
    car = scene.objects["Car"]
    result = api.texture_objects([car], prompt="rusty metal", views=3, server=backend.url, model="builtin:tiny",
                                 size=64, steps=2, seed=5, texture_size=32, reference="first view",
                                 reference_weight=0.8, mode="sequential")
    try:
        _check_first_view_jobs(backend, result)
    finally:  # leave the names free for the texture tests that come after (they expect "Car Scenecast")
        api.restore_materials([car])
        for image in list(result.values()):
            bpy.data.images.remove(image)
        material = bpy.data.materials.get("Car Scenecast")
        if material is not None:
            bpy.data.materials.remove(material)


def _check_first_view_jobs(backend, result) -> None:
    done = [v for v in result.views if not v.get("skipped")]
    assert len(done) >= 2
    first = job_record(backend.url, done[0]["job_id"])
    assert refs(first["spec"]["stages"][0]) == []
    for view in done[1:]:
        record = job_record(backend.url, view["job_id"])
        assert refs(record["spec"]["stages"][0]) == [("reference", 0.8)]
        assert ran_references(record)[0]["weight"] == 0.8


def test_stylize_frames_holds_the_first_frames_look(api, backend, scene, tmp_path):
    result = api.stylize_frames(scene, 1, 3, str(tmp_path / "frames"), prompt="a street", server=backend.url,
                                model="builtin:tiny", width=64, height=64, steps=2, seed=11, reference="first view")
    jobs = [f.get("job_id") for f in sorted(result.record["frames"].values(), key=lambda f: f["file"])] \
        if isinstance(result.record.get("frames"), dict) else [f.get("job_id") for f in result.record["frames"]]
    jobs = [j for j in jobs if j]
    assert len(jobs) >= 2
    assert not any(refs(s) for s in job_record(backend.url, jobs[0])["spec"]["stages"])
    for job_id in jobs[1:]:
        stages = job_record(backend.url, job_id)["spec"]["stages"]
        assert [refs(s) for s in stages] == [[("reference", 0.6)]] * len(stages), stages


def test_the_scenes_reference_image_and_weight_apply_when_the_call_gives_none(api, scene):
    rgb = np.zeros((16, 24, 3), dtype=np.uint8)
    rgb[:8] = (255, 0, 0)  # top half red: rows must arrive top first
    image = bpy.data.images.new("Style", 24, 16)
    rgba = np.ones((16, 24, 4), dtype=np.float32)
    rgba[..., :3] = rgb[::-1] / 255.0
    image.pixels.foreach_set(rgba.ravel())
    s = scene.scenecast
    s.reference_image, s.reference_weight = image, 0.9
    try:
        request = api.prepare(scene, prompt="x", model="builtin:tiny", width=64, height=64)
        assert request.params["reference"] == [{"image": "reference", "weight": 0.9}]
        assert np.array_equal(request.images["reference"], rgb)
        s.reference_first_view = True  # Generate has no first view to follow: no reference
        assert "reference" not in api.prepare(scene, prompt="x", model="builtin:tiny", width=64, height=64).params
        with pytest.raises(ValueError, match="reference_weight"):
            api.prepare(scene, prompt="x", reference=image, reference_weight=3.0)
    finally:
        s.reference_image, s.reference_first_view = None, False
        bpy.data.images.remove(image)


@pytest.mark.parametrize(("model", "controlnet", "family"),
                         [("builtin:tiny-zimage", "builtin:tiny-zimage-controlnet", "zimage"),
                          ("builtin:tiny-qwen", "builtin:tiny-qwen-controlnet", "qwen")])
def test_the_families_without_a_reference_input_generate_from_the_addon(api, backend, scene, tmp_path, model,
                                                                        controlnet, family):
    """Z-Image and Qwen-Image from the add-on with a ControlNet unit; a reference is refused at submit,
    naming why (docs/models.md: they have no reference input in diffusers 0.42)."""
    tiny = dict(model=model, width=64, height=64, steps=2, seed=7, server=backend.url)
    image = api.generate(scene, prompt="a rainy street", units=[{"type": "depth", "model": controlnet}], **tiny)[0]
    record = job_record(backend.url, image["scenecast_job"])
    stage = next(v for v in _walk(record) if isinstance(v, dict) and "steps_run" in v)
    assert stage["family"] == family and stage["steps_run"] == 2
    assert [u.get("model") for u in stage["controlnets"]] == [controlnet]
    errors = __import__(api.__name__.rsplit(".", 1)[0] + ".core.errors", fromlist=["ScenecastError"])
    path = _write_png(tmp_path / "style.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(errors.ScenecastError, match="reference"):
        api.generate(scene, prompt="a rainy street", reference=path, **tiny)
