"""The demo's texturing step: multi-view textures for a few blockout objects, and renders from new angles.

Called by examples/demo.py after the single-image generation, with the add-on's ``api`` module:

1. ``api.texture_objects`` textures the car and the nearest building in synchronized mode (``MODE``):
   each from its own rig of views around it, all views of an object denoised together in one job,
   fused through its texture so the views agree (docs/projection.md) — one run per object, so each
   fills its views instead of sharing them with a distant neighbour;
2. the textures are saved to ``out/texture/<object>.png`` (their UV layout) and each textured object
   is rendered with Cycles from two angles no view used, into ``out/texture/<object>_render_*.png``.
"""

from __future__ import annotations

import importlib
import math
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import numpy as np

#: The installed add-on's package (the demo installs it as an extension).
ADDON_MODULE = "bl_ext.user_default.scenecast"
#: Objects of examples/blockout_scene.py the demo textures.
TARGETS = ("Car", "Building.L1")
#: What each target should look like.
PROMPTS = {
    "Car": "a small rusty european hatchback, faded red paint, hand-painted game texture",
    "Building.L1": "an old plastered townhouse facade with shuttered windows, hand-painted game texture",
}
#: Angles (azimuth, elevation in degrees) of the extra renders: between the rig's views.
NEW_ANGLES = ((-60.0, 25.0), (150.0, 35.0))
#: Texture Objects mode the demo uses (api.texture_objects(mode=...)): every view in one fused job.
MODE = "synchronized"


def run(api: ModuleType, scene: bpy.types.Scene, out: Path, *, model: str, size: int, steps: int,
        seed: int, views: int = 6, texture_size: int = 512) -> dict[str, Any]:
    """Texture ``TARGETS`` of ``scene`` and write ``out/texture/``; returns object name → result."""
    folder = out / "texture"
    folder.mkdir(parents=True, exist_ok=True)
    objects = [scene.objects[name] for name in TARGETS]
    t0 = time.monotonic()

    def on_view(i: int, n: int, text: str) -> None:
        print(f"  texture {text}", flush=True)

    results: dict[str, Any] = {}
    for obj in objects:
        result = api.texture_objects(
            [obj], prompt=PROMPTS.get(obj.name, "hand-painted game texture"), views=views, model=model,
            size=size, steps=steps, seed=seed, texture_size=texture_size, on_view=on_view, mode=MODE,
        )
        image = result[obj]
        path = folder / f"{obj.name}.png"
        image.save(filepath=str(path))  # a packed image saves its pixels to this path, staying packed
        jobs = len({v.get("job_id") for v in result.views if v.get("job_id")})
        print(f"texture: {path} ({MODE} mode: {views} views in {jobs} job(s);"
              f" {100 * result.coverage[obj.name]:.1f}% of its texels seen by a view)")
        for note in result.notes:
            print(f"NOTE: {note}")
        timings = {key: sum(v.get("timings", {}).get(key, 0.0) for v in result.views)
                   for key in ("passes", "render_back", "job", "project", "write", "passes_and_correspondence", "bake")
                   if any(key in v.get("timings", {}) for v in result.views)}
        print("  time: " + ", ".join(f"{k} {t:.1f} s" for k, t in timings.items()))
        results[obj.name] = result
    rendered = [path for obj in objects for path in render_new_angles(scene, [obj], folder, size)]
    print(f"textured {len(results)} objects in {MODE} mode from {views} views each in {time.monotonic() - t0:.1f} s;"
          f" renders from new angles: {', '.join(p.name for p in rendered)}")
    return results


def render_new_angles(scene: bpy.types.Scene, objects: list[bpy.types.Object], folder: Path,
                      size: int) -> list[Path]:
    """Cycles renders of ``objects`` alone (others hidden) from ``NEW_ANGLES``; the scene is restored."""
    texturing = importlib.import_module(ADDON_MODULE + ".blender.texturing")
    camera_rig = importlib.import_module(ADDON_MODULE + ".core.camera_rig")
    center, radius = texturing.selection_sphere(objects)
    distance = camera_rig.fit_distance(radius, 39.6)
    saved = (scene.camera, scene.render.filepath, scene.render.resolution_x, scene.render.resolution_y,
             scene.render.resolution_percentage, scene.render.engine, scene.cycles.samples,
             scene.view_settings.view_transform, scene.render.image_settings.file_format)
    world = bpy.data.worlds.new("Scenecast Demo Light")  # even grey light: every side of the texture shows
    if world.node_tree is None:  # Blender 4.x: node trees on request (5.0 always has one)
        world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.bl_idname == "ShaderNodeBackground")
    background.inputs["Color"].default_value = (0.8, 0.8, 0.8, 1.0)
    saved_world = scene.world
    scene.world = world
    data = bpy.data.cameras.new("Scenecast Demo View")
    camera = bpy.data.objects.new(data.name, data)
    scene.collection.objects.link(camera)
    paths = []
    try:
        with texturing.isolated(scene, objects):
            scene.camera = camera
            scene.render.engine = "CYCLES"
            scene.cycles.samples = 16
            scene.cycles.device = "CPU"
            scene.render.resolution_x = scene.render.resolution_y = size
            scene.render.resolution_percentage = 100
            scene.view_settings.view_transform = "Standard"
            scene.render.image_settings.file_format = "PNG"
            for i, (azimuth, elevation) in enumerate(NEW_ANGLES):
                a, e = math.radians(azimuth), math.radians(elevation)
                eye = center + distance * np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
                camera.matrix_world = camera_rig.look_at(eye, center).T.tolist()
                path = folder / f"{objects[0].name}_render_{i + 1}.png"
                scene.render.filepath = str(path)
                bpy.ops.render.render(write_still=True, scene=scene.name)
                paths.append(path)
    finally:
        (scene.camera, scene.render.filepath, scene.render.resolution_x, scene.render.resolution_y,
         scene.render.resolution_percentage, scene.render.engine, scene.cycles.samples,
         scene.view_settings.view_transform, scene.render.image_settings.file_format) = saved
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(data)
        scene.world = saved_world
        bpy.data.worlds.remove(world)
    return paths

