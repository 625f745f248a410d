"""One source of settings: segmentation classes set in the UI reach every feature; tooltips say what is drawn."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from test_projection import uv_sphere


@pytest.fixture
def classed_scene(empty_scene):
    """A sphere classed "car" in the UI, a second one with no class, and a camera looking at both."""
    scene = empty_scene
    car = uv_sphere(scene, "Car", location=(-1.2, 0, 0))
    uv_sphere(scene, "Blob", location=(1.2, 0, 0))
    car.scenecast.segment_class = "car"
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    cam.location = (0, -8, 0)
    cam.rotation_euler = (np.pi / 2, 0, 0)
    scene.camera = cam
    return scene


def test_object_classes_come_from_the_ui_and_from_the_custom_property(sc_module, classed_scene):
    settings = sc_module("blender.settings")
    extract = sc_module("blender.extract")
    classed_scene.objects["Blob"]["scenecast_class"] = "rock"
    assert settings.object_classes(classed_scene) == {"Car": "car", "Blob": "rock"}
    assert extract.object_classes is settings.object_classes  # one function, not two that drift


def test_texture_objects_sends_the_segmentation_classes_set_in_the_ui(sc_module, classed_scene, tmp_path):
    """It used to read only the custom property: the UI's class was drawn black in its passes."""
    texturing = sc_module("features.texturing")
    base = sc_module("features.base")
    segmentation = sc_module("core.segmentation")
    remote_job = sc_module("core.remote_job")
    settings = texturing.TextureSettings(
        base_params={"prompt": "x", "seed": 0, "width": 64, "height": 64, "preview_every": 0},
        request_fields={"server": "http://127.0.0.1:1", "output_dir": str(tmp_path)}, texture_size=(16, 16),
        mode="sequential")
    sent = []

    def capture(request, **kwargs):
        sent.append(request)
        raise remote_job.JobFailed("stopped by the test", None, status="cancelled")

    car = classed_scene.objects["Car"]
    run = texturing.texture_objects(classed_scene, [car], settings, views=[classed_scene.camera])
    with pytest.raises(remote_job.JobFailed):
        base.run_blocking(run, runner=capture)
    colours = {tuple(c) for c in sent[0].images["segmentation"].reshape(-1, 3)}
    assert segmentation.ade20k_color("car") in colours


def test_an_object_without_a_class_is_drawn_black_as_its_tooltip_says(sc_module, classed_scene):
    props = sc_module("ui.properties")
    generate = sc_module("features.generate")
    none_item = next(item for item in props._class_items() if item[0] == props.NO_CLASS)
    assert "black" in none_item[2] and "colour" not in none_item[2]
    passes = generate.extract_passes(classed_scene, resolution=(64, 32))
    seg, ids = passes.control["segmentation"], passes.raw["object_id"]
    blob_id = next(i for i, name in passes.objects.items() if name == "Blob")
    car_id = next(i for i, name in passes.objects.items() if name == "Car")
    assert (ids == blob_id).any() and (seg[ids == blob_id] == 0).all()
    assert (seg[ids == car_id] == sc_module("core.segmentation").ade20k_color("car")).all()


def test_ui_messages_name_the_real_default_port(sc_module):
    backend_process = sc_module("core.backend_process")
    client = sc_module("core.client")
    assert backend_process.DEFAULT_URL.endswith(":7437")
    with pytest.raises(Exception) as info:
        client.BackendClient("")
    assert "7860" not in str(info.value) and "7437" in str(info.value)
