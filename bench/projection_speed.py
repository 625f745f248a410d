"""Projection texturing (addon/core, numpy only): 8 views onto one texture, stage by stage, in the same run
as a plain numpy pass over the same texels.

    .venv-blender/bin/python bench/projection_speed.py [--texture 2048] [--view 1024] [--views 8] [--segments 224]

Scene: a unit UV sphere, ``segments`` x ``segments`` quads split into 2 triangles each (224 → 100,352
triangles), UVs laid out as two non-overlapping islands (one per half of the longitudes), 8 perspective
cameras (50 mm, 36 mm sensor) around it at distance 4, alternately 20° above and below the equator, each
with a smooth synthetic 1024² image. Stages: UV rasterisation and interpolation once; per view the
z-buffer depth map (``rasterize_view``), the render-back for the next view's init image, the view's
feather map and pixel table (``ViewSampler``) and weights + image sampling + accumulation
(``project_into``, what ``project_image`` + ``accumulate`` compute); at the end ``fill_unseen`` and
``pad_islands``. ``--threads`` sets ``core.threads.THREADS`` (default: up to 4 cores).

Baseline: one plain numpy pass over the same texels — all N texel points (N, 4) float32 times a 4x4
matrix, timed before every view. Each stage prints wall and CPU time (CPU time sums all threads; on a
shared machine it is the steadier figure). Prints ``RATIO projection_8views_vs_2s <total/2 s>`` (target < 1) and
``RATIO projection_view_vs_plain_pass <per-view core work / baseline>`` (how many plain passes one
view's weights, sampling and accumulation cost).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from addon.core.projection import CameraView, perspective_matrix, rasterize_view  # noqa: E402
from addon.core.texture_blend import fill_unseen, pad_islands, render_texture_into_view  # noqa: E402
from addon.core.uv_raster import interpolate, rasterize_uv  # noqa: E402
from addon.core import threads  # noqa: E402
from addon.core.view_sampler import TexelSet, ViewSampler, project_into  # noqa: E402


def sphere(segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tri_world, tri_normal, tri_uv), each (T, 3, k): a unit sphere with a two-island UV layout."""
    n = segments
    lon = np.linspace(0.0, 2 * math.pi, n + 1)
    lat = np.linspace(0.02 * math.pi, 0.98 * math.pi, n + 1)  # polar caps left open: no degenerate rows
    lo, la = np.meshgrid(lon, lat)
    p = np.stack([np.sin(la) * np.cos(lo), np.sin(la) * np.sin(lo), np.cos(la)], -1)
    half = n // 2  # island 0: longitudes [0, π) → u in [0.01, 0.49]; island 1: [π, 2π) → [0.51, 0.99]
    col = np.arange(n + 1)

    def quads(values: np.ndarray) -> np.ndarray:
        a, b, c, d = values[:-1, :-1], values[:-1, 1:], values[1:, 1:], values[1:, :-1]
        return np.concatenate([np.stack([a, b, c], 2).reshape(-1, 3, values.shape[-1]),
                               np.stack([a, c, d], 2).reshape(-1, 3, values.shape[-1])])

    tri_p = quads(p)
    # UV per quad corner: compute with the island of the quad (left column decides), so the seam splits cleanly
    v = (np.arange(n + 1) / n) * 0.96 + 0.02
    uv_left = np.stack(np.meshgrid(0.01 + 0.48 * np.minimum(col, half) / half, v), -1)
    uv_right = np.stack(np.meshgrid(0.51 + 0.48 * (np.maximum(col, half) - half) / (n - half), v), -1)
    ql, qr = quads(uv_left), quads(uv_right)
    quad_col = np.tile(np.tile(np.arange(n), n), 2)
    tri_uv = np.where((quad_col < half)[:, None, None], ql, qr)
    return tri_p, tri_p.copy(), tri_uv  # the unit sphere's normal is its position


def cameras(count: int, res: int) -> list[CameraView]:
    views = []
    for i in range(count):
        az, el = 2 * math.pi * i / count, math.radians(20 if i % 2 else -20)
        eye = 4.0 * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        back = eye / np.linalg.norm(eye)
        right = np.cross([0.0, 0.0, 1.0], back)
        right /= np.linalg.norm(right)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, eye
        views.append(CameraView(np.linalg.inv(m), perspective_matrix(50.0, 36.0, (res, res), 0.1, 100.0), (res, res)))
    return views


def image(res: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:res, 0:res] / res
    k = 1 + seed
    return np.stack([0.5 + 0.4 * np.sin(6 * x * k), 0.5 + 0.4 * np.cos(5 * y + k), np.full_like(x, 0.1 * (seed % 8))], -1).astype(np.float32)


class Clock:
    """Wall and CPU seconds of one stage: on a shared 2-core machine the CPU time is the steadier figure."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.mark()

    def mark(self) -> None:
        self.w0, self.c0 = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        self.wall.setdefault(name, []).append(w - self.w0)
        self.cpu.setdefault(name, []).append(c - self.c0)
        self.w0, self.c0 = w, c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texture", type=int, default=2048)
    parser.add_argument("--view", type=int, default=1024)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--segments", type=int, default=224)
    parser.add_argument("--threads", type=int, default=threads.THREADS)
    args = parser.parse_args()
    threads.THREADS = max(1, args.threads)
    tri_p, tri_n, tri_uv = sphere(args.segments)
    views = cameras(args.views, args.view)
    images = [image(args.view, i) for i in range(args.views)]
    size = (args.texture, args.texture)
    print(f"numpy {np.__version__}; {threads.THREADS} threads; {len(tri_p)} triangles, texture {size[0]}², {args.views} views of {args.view}²")

    clock = Clock()
    samples = rasterize_uv(tri_uv, size)
    clock.lap("rasterize_uv")
    points, normals = interpolate(samples, tri_p), interpolate(samples, tri_n)
    clock.lap("interpolate")
    texels = TexelSet(points, normals, samples.index)
    clock.lap("texel_set")
    n = len(samples.index)
    hom = np.concatenate([points, np.ones((n, 1), np.float32)], axis=1)

    color = np.zeros((size[1], size[0], 3), np.float32)
    weight = np.zeros((size[1], size[0]), np.float32)
    for view, img in zip(views, images):
        m = np.asarray(view.projection @ view.world_to_camera, dtype=np.float32)
        clock.mark()
        hom @ m.T  # the baseline, interleaved with the views: both see the same machine load
        clock.lap("plain_pass")
        raster = rasterize_view(view, tri_p)
        clock.lap("rasterize_view")
        render_texture_into_view(raster, tri_uv, color, weight)
        clock.lap("render_back")
        sampler = ViewSampler(view, img, raster.depth)
        clock.lap("view_sampler")
        project_into(sampler, texels, color, weight)
        clock.lap("project_into")
    for view in views:  # the option for closed meshes, outside the total
        clock.mark()
        rasterize_view(view, tri_p, cull_backfaces=True)
        clock.lap("rasterize_view (cull_backfaces, not in total)")
    islands = samples.covered_mask()
    clock.mark()
    filled = fill_unseen(color, weight, islands)
    clock.lap("fill_unseen")
    pad_islands(filled, islands, 16)
    clock.lap("pad_islands")

    seen = np.count_nonzero(weight.reshape(-1)[samples.index] > 0)
    print(f"texels: {n} covered ({n / (size[0] * size[1]):.0%}), {seen} seen by some view ({seen / n:.1%})")
    med = {k: (statistics.median(v), statistics.median(clock.cpu[k])) for k, v in clock.wall.items()}
    for k, v in clock.wall.items():
        kind = "per view" if len(v) > 1 else "once    "
        print(f"{kind} {k:15s}  wall {med[k][0] * 1000:7.1f} ms  cpu {med[k][1] * 1000:7.1f} ms"
              + (f"  (median of {len(v)}; total wall {sum(v) * 1000:.0f} ms)" if len(v) > 1 else ""))
    base_w, base_c = med["plain_pass"]
    core_w = statistics.median(a + b for a, b in zip(clock.wall["view_sampler"], clock.wall["project_into"]))
    core_c = statistics.median(a + b for a, b in zip(clock.cpu["view_sampler"], clock.cpu["project_into"]))
    work = [k for k in clock.wall if k != "plain_pass" and "not in total" not in k]
    total_w = sum(sum(clock.wall[k]) for k in work)
    total_c = sum(sum(clock.cpu[k]) for k in work)
    print(f"per view core (view_sampler + project_into = project_image + accumulate): wall {core_w * 1000:.1f} ms = {core_w / base_w:.1f} plain passes; "
          f"cpu {core_c * 1000:.1f} ms = {core_c / base_c:.1f} plain passes")
    print(f"total ({args.views} views, everything above but the baseline): wall {total_w:.2f} s, cpu {total_c:.2f} s; target 2 s")
    print(f"RATIO projection_8views_vs_2s {total_w / 2.0:.3f}")
    print(f"RATIO projection_view_vs_plain_pass {core_w / base_w:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
