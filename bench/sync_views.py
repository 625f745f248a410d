"""Synchronized multi-view texturing (issue 14): agreement across views, the fusion's cost, the device bake.

    .venv/bin/python bench/sync_views.py [--parts agreement,fusion,bake] [--sd15-size 128] [--views 8]

- **agreement**: ``run_job`` of a ``texture_sync`` stage on the open-box scene of
  ``tests/backend/sync_scene.py`` (4 views), synchronized (the whole schedule fused, and the default 80 %)
  against separate (nothing fused, the same texture-space initial noise), on ``builtin:tiny`` (128²) and
  ``builtin:sd15-random`` (``--sd15-size``², no ControlNet, CFG 5, 4 DDIM steps). Both have random
  weights: their images are noise, so this measures the mechanism. Figures: the views' spread at texels
  seen by >= 2 views (mean abs difference from the texel's mean), in latent units and in image units
  (0..1). ``RATIO sync_spread_<model> <synced/separate>`` (latent; target <= 0.25).
  Texture Objects' ``sequential`` mode is not in this comparison: it is a chain the add-on drives in
  Blender (render the texture so far into each view with the Projector, a repaint mask, an ``inpaint``
  job per view), not a backend stage, and its views agree by *keeping* the pixels already covered, so
  on random weights its spread would measure the inpaint's keep mask and the random VAE's round trip,
  not style agreement. tests/e2e/test_texture_modes.py runs all three modes through the real backend.
- **fusion**: one fusion (``TexelMap.fuse``: scatter + gather of 8 views' 4x64x64 x0) against one
  batched SD1.5 UNet step at 512² (16 samples with CFG). The UNet is timed on 2 samples and scaled
  by 8 (on a CPU a batch costs its samples' sum). ``RATIO sync_fusion_share <fusion / UNet step>``.
- **bake**: 8 views of 1024² into a 2048² texture of the 100k-triangle sphere of
  ``bench/projection_speed.py``: the torch bake (``fusion.bake``, given the correspondences) against the
  numpy path (``ViewSampler`` + ``project_into`` per view, given the depth maps), same run, same texels.
  The correspondences' own cost (add-on side) is printed apart. ``RATIO sync_bake_numpy_over_torch``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "backend"))

import torch  # noqa: E402

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


def agreement(model: str, size: int, steps: int = 4) -> None:
    from backend.models import ModelManager
    from backend.pipelines import run_job
    from backend.spec import JobSpec
    from sync_scene import correspondence

    class Quiet:
        def stage(self, *a): pass  # noqa: E704, ANN002
        def step(self, *a): pass  # noqa: E704, ANN002
        def preview(self, *a): pass  # noqa: E704, ANN002
        def download(self, *a): pass  # noqa: E704, ANN002
        def cancelled(self) -> bool: return False  # noqa: E704

    views = 4
    t0 = time.perf_counter()
    data, _ = correspondence(views, size, latent_texture=max(4, size // 16))
    t_corr = time.perf_counter() - t0
    manager = ModelManager(device="cpu")
    results = {}
    for label, fraction in (("synced_all", 1.0), ("synced_80", 0.8), ("separate", 0.0)):
        spec = JobSpec.model_validate({
            "model": model, "prompt": "a wooden crate", "width": size, "height": size, "steps": steps, "seed": 1,
            "guidance": 5.0, "scheduler": "ddim",
            "stages": [{"type": "texture_sync", "correspondence": "corr", "sync_fraction": fraction,
                        "views": [{} for _ in range(views)]}]})
        t0 = time.perf_counter()
        res = run_job(spec, {"corr": data}, manager, Quiet())
        info = res.info["stages"][0]["sync"]
        results[label] = info
        print(f"{model} {size}² {label:10s}: latent spread {info['latent_spread']:.4f}, image spread "
              f"{info['image_spread']:.4f}, {time.perf_counter() - t0:.1f} s (micro-batch {info['micro_batch']})")
    print(f"  correspondences for {views} views ({size}², add-on side): {t_corr:.2f} s")
    name = model.split(":")[-1]
    for label in ("synced_all", "synced_80"):
        r = results[label]["latent_spread"] / max(results["separate"]["latent_spread"], 1e-12)
        ri = results[label]["image_spread"] / max(results["separate"]["image_spread"], 1e-12)
        print(f"RATIO sync_spread_{name}_{label} {r:.3f}   (image: {ri:.3f})")


def fusion_share(views: int = 8) -> None:
    from backend.models.builtins import build_sd15_random
    from backend.pipelines.sync.fusion import TexelMap

    rng = np.random.default_rng(0)
    h = w = 64
    # ~55 % of each view on the object, 24k latent texels (a 3x 90² latent texture), neighbouring pixels
    # on neighbouring texels as in a real view
    idx = np.full((views, h, w), -1, np.int32)
    for v in range(views):
        yy, xx = np.mgrid[0:h, 0:w]
        on = (xx - 32) ** 2 + (yy - 32) ** 2 < 27 ** 2
        t = ((yy * 90 // 64) * 90 + (xx * 90 // 64) + v * 1500) % 24300
        idx[v][on] = t[on]
    wts = np.where(idx >= 0, rng.random((views, h, w)), 0).astype(np.float32)
    tmap = TexelMap(idx, wts, 24300)
    x0 = torch.randn(views, 4, h, w)
    tmap.fuse(x0, 2.0)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        tmap.fuse(x0, 3.0)
    fuse = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    base = build_sd15_random()
    print(f"  (built builtin:sd15-random in {time.perf_counter() - t0:.1f} s)")
    unet = base.unet
    emb = torch.randn(2, 77, 768)
    x = torch.randn(2, 4, h, w)
    with torch.inference_mode():
        unet(x[:1], 500, encoder_hidden_states=emb[:1])  # warm-up
        t0 = time.perf_counter()
        unet(x, 500, encoder_hidden_states=emb)
        two = time.perf_counter() - t0
    step = two * views  # 2 views x ... : 16 samples = 8 x the 2 timed
    print(f"fusion of {views} views' x0 (4x64x64, {len(tmap.pix)} pixels -> 24300 texels): {fuse * 1000:.1f} ms; "
          f"SD1.5 UNet, 2 samples at 512²: {two:.1f} s -> batched step of {2 * views} samples ~{step:.1f} s")
    print(f"RATIO sync_fusion_share {fuse / step:.5f}")


def bake(views: int = 8, texture: int = 2048, res: int = 1024, segments: int = 224) -> None:
    from addon.core.projection import rasterize_view
    from addon.core.sync_views import PackedTexels, view_correspondence
    from addon.core.uv_raster import interpolate, rasterize_uv
    from addon.core.view_sampler import TexelSet, ViewSampler, project_into
    from backend.pipelines.sync.fusion import TexelMap
    from backend.pipelines.sync.fusion import bake as torch_bake
    from projection_speed import cameras, image, sphere

    tri, nrm, uv = sphere(segments)
    samples = rasterize_uv(uv, (texture, texture))
    texels = TexelSet(interpolate(samples, tri), interpolate(samples, nrm), samples.index)
    packed = PackedTexels([(uv, samples)])
    cams = cameras(views, res)
    imgs = [image(res, k) for k in range(views)]
    t_raster = t_corr = 0.0
    depths, idx, wts = [], [], []
    for v in cams:
        t0 = time.perf_counter()
        r = rasterize_view(v, tri)
        t1 = time.perf_counter()
        i, w = view_correspondence(v, r, packed, tri, nrm, power=1.0)
        t_corr += time.perf_counter() - t1
        t_raster += t1 - t0
        depths.append(r.depth)
        idx.append(i)
        wts.append(w)
    # numpy path: what Texture Objects does per view today, given the depth maps
    col = np.zeros((texture, texture, 3), np.float32)
    wt = np.zeros((texture, texture), np.float32)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for v, img, d in zip(cams, imgs, depths):
        project_into(ViewSampler(v, img, d), texels, col, wt)
    t_numpy, c_numpy = time.perf_counter() - t0, time.process_time() - c0
    # torch path: upload the maps, one scatter for all views
    t0 = time.perf_counter()
    c0 = time.process_time()
    tmap = TexelMap(np.stack(idx), np.stack(wts), packed.count)
    t_map = time.perf_counter() - t0
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    t1 = time.perf_counter()
    tex, wsum = torch_bake(tmap, x, exponent=2.0)
    t_torch, c_torch = time.perf_counter() - t0, time.process_time() - c0
    t_scatter = time.perf_counter() - t1
    both = (wsum.numpy() > 0) & (wt.reshape(-1)[samples.index] > 0)
    diff = np.abs(tex.numpy()[both] - col.reshape(-1, 3)[samples.index][both]).mean()
    print(f"bake {views} views {res}² -> {texture}² ({len(samples.index)} texels, {len(tri)} triangles):")
    print(f"  numpy path (ViewSampler + project_into): {t_numpy:.2f} s wall, {c_numpy:.2f} s CPU")
    print(f"  torch bake: {t_torch:.2f} s wall ({t_map:.2f} s building the map, {t_scatter:.2f} s scatter), "
          f"{c_torch:.2f} s CPU; mean abs difference to the numpy texture {diff:.4f} (different sampling:"
          f" pixel->texel nearest vs texel->pixel bilinear + feather)")
    print(f"  add-on side, per run: z-buffers {t_raster:.2f} s (needed by both), correspondences {t_corr:.2f} s")
    print(f"RATIO sync_bake_numpy_over_torch {t_numpy / t_torch:.2f}")
    print(f"RATIO sync_bake_numpy_over_torch_scatter_only {t_numpy / t_scatter:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="agreement,fusion,bake")
    ap.add_argument("--sd15-size", type=int, default=128)
    ap.add_argument("--views", type=int, default=8)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    parts = args.parts.split(",")
    if "agreement" in parts:
        agreement("builtin:tiny", 128)
        agreement("builtin:sd15-random", args.sd15_size)
    if "fusion" in parts:
        fusion_share(args.views)
    if "bake" in parts:
        sys.path.insert(0, str(ROOT / "bench"))
        bake(args.views)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
