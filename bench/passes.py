"""Pass extraction against a plain Cycles render of the same scene, in the same run.

    .venv-blender/bin/python bench/passes.py [--sizes 512 1024] [--repeat 5]

Scene: a blockout (ground plane, 6 boxes, 6 spheres) built here with bmesh. Baseline: Cycles on the
CPU, 1 sample, no denoising, the scene's other settings at factory defaults — what "render one
frame" costs. Measured: ``extract_passes`` with all four control images (geometric edges), one
frame. Prints medians (first run dropped: kernel loading) and the ratio extract / baseline, plus
where extraction spends its time. Runs the add-on from this checkout (``addon`` package).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import bpy  # first: bmesh and mathutils come with it
import bmesh
from mathutils import Vector

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from addon.blender.extract import extract_passes  # noqa: E402


def blockout(scene: bpy.types.Scene) -> bpy.types.Object:
    def add(name: str, bm: bmesh.types.BMesh, location: tuple[float, float, float], smooth: bool) -> None:
        mesh = bpy.data.meshes.new(name)
        bm.to_mesh(mesh)
        bm.free()
        for poly in mesh.polygons:
            poly.use_smooth = smooth
        obj = bpy.data.objects.new(name, mesh)
        obj.location = location
        scene.collection.objects.link(obj)

    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=10)
    add("Ground", bm, (0, 0, 0), False)
    for i in range(6):
        bm = bmesh.new()
        bmesh.ops.create_cube(bm, size=1.0)
        add(f"Box{i}", bm, (i - 2.5, (i % 3) - 1, 0.5), False)
        bm = bmesh.new()
        bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16, radius=0.4)
        add(f"Ball{i}", bm, (i - 2.5, (i % 2) * 2 - 1.5, 1.4), True)
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.location = (6, -6, 4)
    cam.rotation_euler = (Vector((0, 0, 0.5)) - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(cam)
    scene.camera = cam
    bpy.context.view_layer.update()
    return cam


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    cam = blockout(scene)
    print(f"Blender {bpy.app.version_string}, {scene.render.threads} render threads")
    for size in args.sizes:
        scene.render.engine = "CYCLES"
        scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", 1, False
        scene.render.resolution_x = scene.render.resolution_y = size
        scene.render.resolution_percentage = 100
        plain, extract, stages = [], [], []
        for _ in range(args.repeat + 1):
            t0 = time.perf_counter()
            bpy.ops.render.render()
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            passes = extract_passes(scene, cam, (size, size))
            extract.append(time.perf_counter() - t0)
            stages.append(passes.timings)
        p, e = statistics.median(plain[1:]), statistics.median(extract[1:])
        split = {k: statistics.median(s[k] for s in stages[1:]) for k in stages[-1]}
        print(
            f"{size}x{size}: plain Cycles 1 spp {p:.3f} s, extract_passes {e:.3f} s, ratio {e / p:.2f}  "
            + " ".join(f"{k}={v:.3f}" for k, v in split.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
