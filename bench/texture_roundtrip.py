"""Projection accuracy: render a known texture from K views with Blender, project the renders back, compare.

    .venv-blender/bin/python bench/texture_roundtrip.py [--size 512] [--render 512] [--views 10]

For a cube, a UV sphere and a torus (which hides part of itself from most views), each with its own UVs
from Blender's primitives: the object gets a known smooth texture (gradients and a blurred large
checker, ``--size`` texels) shown as emission; Cycles renders it (CPU, 1 sample at pixel centres,
Standard view transform, via the add-on's ``render_passes``) from ``--views`` cameras around it (8 on a
ring at ±30° elevation, plus top and bottom). ``blender.projection.Projector`` projects the renders onto
a blank texture of the same size. Printed per object:

- PSNR (dB, sRGB 0..1, peak 1) over the texels the projection covered (weight > 0); target ≥ 30.
- coverage: covered texels / texels visible from some view (facing it, inside its frame, not
  occluded: the geometric test, without the 80° cut-off or feathering); target ≥ 99 %.
- ``RATIO texture_roundtrip_project_vs_render``: seconds to project all views (UV rasterisation,
  depth maps, gathers, blending) / seconds Cycles took to render them, in the same run.

Runs the add-on from this checkout (``addon`` package).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import bpy  # first: bmesh and mathutils come with it
import bmesh
import numpy as np
from mathutils import Vector

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from addon.blender.passes import render_passes  # noqa: E402
from addon.blender.projection import Projector  # noqa: E402

#: Cut-off for "visible": facing the camera at all (cos θ above this).
VISIBLE_COS = 1e-3


def known_texture(size: int) -> np.ndarray:
    """(H, W, 3) sRGB 0..1, row 0 bottom: smooth gradients and a 4×4 checker blurred over 1/8 of a square."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32)
    u, v = (u + 0.5) / size, (v + 0.5) / size
    checker = ((np.floor(u * 4) + np.floor(v * 4)) % 2).astype(np.float32)
    k = max(size // 32, 1)
    for axis in (0, 1):
        for _ in range(3):  # three box passes ≈ a Gaussian
            checker = sum(np.roll(checker, s, axis=axis) for s in range(-k, k + 1)) / (2 * k + 1)
    return np.stack([0.15 + 0.7 * u, 0.2 + 0.6 * checker, 0.85 - 0.5 * v * (0.6 + 0.4 * checker)], axis=-1)


def add_object(kind: str) -> bpy.types.Object:
    scene = bpy.context.scene
    if kind == "torus":  # Blender's own torus operator makes its UVs; headless is fine
        bpy.ops.mesh.primitive_torus_add(major_radius=1.0, minor_radius=0.45, major_segments=48,
                                         minor_segments=24, generate_uvs=True)
        obj = bpy.context.active_object
        for poly in obj.data.polygons:
            poly.use_smooth = True
        return obj
    bm = bmesh.new()
    bm.loops.layers.uv.new("UVMap")
    if kind == "cube":
        bmesh.ops.create_cube(bm, size=1.6, calc_uvs=True)
    else:
        bmesh.ops.create_uvsphere(bm, u_segments=64, v_segments=32, radius=1.0, calc_uvs=True)
    mesh = bpy.data.meshes.new(kind)
    bm.to_mesh(mesh)
    bm.free()
    for poly in mesh.polygons:
        poly.use_smooth = kind != "cube"
    obj = bpy.data.objects.new(kind, mesh)
    scene.collection.objects.link(obj)
    return obj


def emission_material(image: bpy.types.Image, uv_map: str) -> bpy.types.Material:
    mat = bpy.data.materials.new("Known")
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = uv_map
    tex = nodes.new("ShaderNodeTexImage")
    tex.image, tex.interpolation, tex.extension = image, "Linear", "EXTEND"
    emit = nodes.new("ShaderNodeEmission")
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(uv.outputs["UV"], tex.inputs["Vector"])
    links.new(tex.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def cameras(count: int, distance: float) -> list[bpy.types.Object]:
    scene = bpy.context.scene
    ring = max(count - 2, 1)
    spots = [(360.0 * i / ring, 30.0 * (-1) ** i) for i in range(ring)] + [(0.0, 89.0), (0.0, -89.0)][: count - ring]
    made = []
    for i, (azimuth, elevation) in enumerate(spots):
        a, e = math.radians(azimuth), math.radians(elevation)
        position = Vector((math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e))) * distance
        cam = bpy.data.objects.new(f"View{i}", bpy.data.cameras.new(f"View{i}"))
        cam.location = position
        cam.rotation_euler = (-position).to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(cam)
        made.append(cam)
    bpy.context.view_layer.update()
    return made


def visible_texels(projector: Projector, view, depth_map: np.ndarray) -> np.ndarray:
    """(N,) bool per texel sample of the first target: facing ``view``, in its frame, not occluded."""
    t = projector.targets[0]
    w, h = view.resolution
    facing = np.einsum("ij,ij->i", t.normals, view.directions_to_camera(t.points)) > VISIBLE_COS
    xy, depth = view.project(t.points)
    inside = np.isfinite(xy).all(axis=1) & (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    col = np.clip(np.nan_to_num(xy[:, 0]).astype(np.int64), 0, w - 1)
    row = np.clip(np.nan_to_num(xy[:, 1]).astype(np.int64), 0, h - 1)
    return facing & inside & (depth <= depth_map[row, col] * 1.01)


def roundtrip(kind: str, size: int, render: int, views: int) -> dict[str, float]:
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    obj = add_object(kind)
    known = known_texture(size)
    image = bpy.data.images.new("Known", size, size, alpha=False)
    rgba = np.ones((size, size, 4), np.float32)
    rgba[..., :3] = known
    image.pixels.foreach_set(rgba.ravel())
    obj.data.materials.append(emission_material(image, obj.data.uv_layers.active.name))
    cams = cameras(views, distance=4.2)
    t0 = time.perf_counter()
    renders = [render_passes(scene, cam, (render, render), color=True, color_samples=1) for cam in cams]
    render_s = sum(r.timings.get("render", 0.0) for r in renders)
    wall_render = time.perf_counter() - t0
    t1 = time.perf_counter()
    projector = Projector([obj], (size, size))
    visible = np.zeros(len(projector.targets[0].samples.index), dtype=bool)
    for cam, raw in zip(cams, renders):
        view = projector.view(cam, (render, render))
        projector.project(view, raw.color.astype(np.float32) / 255.0)
    project_s = time.perf_counter() - t1
    for cam in cams:  # the reference visibility, outside the timed part
        view = projector.view(cam, (render, render))
        visible |= visible_texels(projector, view, projector.depth_map(view))
    t = projector.targets[0]
    got = t.color.reshape(-1, 3)[t.samples.index]
    want = known.reshape(-1, 3)[t.samples.index]
    covered = t.weight.reshape(-1)[t.samples.index] > 0
    mse = float(np.mean((got[covered] - want[covered]) ** 2))
    return {
        "psnr_db": 10 * math.log10(1.0 / max(mse, 1e-12)),
        "coverage": float(np.count_nonzero(covered & visible)) / max(int(np.count_nonzero(visible)), 1),
        "visible": float(np.count_nonzero(visible)) / len(visible),
        "render_s": render_s,
        "render_wall_s": wall_render,
        "project_s": project_s,
        "triangles": float(len(t.triangles.positions)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="texture texels per side (known and projected)")
    parser.add_argument("--render", type=int, default=512, help="render pixels per side")
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--objects", nargs="+", default=["cube", "sphere", "torus"])
    args = parser.parse_args()
    print(f"Blender {bpy.app.version_string}; texture {args.size}², renders {args.render}², {args.views} views")
    total_render = total_project = 0.0
    ok = True
    for kind in args.objects:
        r = roundtrip(kind, args.size, args.render, args.views)
        total_render += r["render_s"]
        total_project += r["project_s"]
        ok &= r["psnr_db"] >= 30.0 and r["coverage"] >= 0.99
        print(f"{kind:7s} {int(r['triangles']):6d} tris  PSNR {r['psnr_db']:.1f} dB over covered texels  "
              f"coverage {100 * r['coverage']:.2f} % of visible ({100 * r['visible']:.1f} % of island texels visible)  "
              f"render {r['render_s']:.2f} s (wall {r['render_wall_s']:.2f} s)  project {r['project_s']:.2f} s", flush=True)
    print(f"targets (PSNR ≥ 30 dB, coverage ≥ 99 %): {'met' if ok else 'NOT met'}")
    print(f"RATIO texture_roundtrip_project_vs_render {total_project / max(total_render, 1e-9):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
