"""Synchronized multi-view texturing on the flow transformers: agreement across views and the fusion's cost.

    .venv/bin/python bench/sync_flow.py [--parts agreement,wide,fusion] [--size 512] [--views 8]

- **agreement**: ``run_job`` of a ``texture_sync`` stage on ``builtin:tiny-flux`` (FLUX.1 dev, 128², 4 views of
  the open box of ``tests/backend/sync_scene.py``, 4 steps), synchronized (all steps fused, and the default 80 %)
  against separate (nothing fused, the same texture-space initial noise): the views' spread at latent texels
  seen by >= 2 views (``record["sync"]["latent_spread"]``). ``RATIO sync_flow_spread_tiny_<label>``.
- **wide**: the same comparison on a FLUX.1-shaped transformer at the **real width** (3072, 24 x 128 heads,
  T5 width 4096) with reduced depth (2 double + 4 single blocks: ``bench/flow_step.py``'s), random weights and
  random text embeddings, 128², through the stage's own parts (``flow.ViewsVelocity`` + ``SyncHook`` +
  ``flow_denoise``). ``RATIO sync_flow_spread_wide_<label>``.
- **fusion**: one fusion (``TexelMap.fuse`` of N views' 16-channel x0 at ``--size``/8) against one transformer
  step of the N views on that FLUX-shaped transformer (1 view timed, times N: on a CPU a batch costs its
  samples' sum). ``RATIO sync_flow_fusion_share``; the real depth (19 + 38 blocks) makes a step ~9.5x longer.

Random weights draw noise: these figures measure the mechanism, never image quality (that needs real
FLUX.1 weights, which cannot be downloaded on the machine these ran on).
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
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
LABELS = (("synced_all", 1.0), ("synced_80", 0.8), ("separate", 0.0))


def _ratios(name: str, spreads: dict[str, float]) -> None:
    for label in ("synced_all", "synced_80"):
        print(f"RATIO sync_flow_spread_{name}_{label} {spreads[label] / max(spreads['separate'], 1e-12):.4f}")


def agreement_tiny(size: int = 128, steps: int = 4) -> None:
    from sync_views import agreement  # the UNet bench's run: same scene, same three runs

    agreement("builtin:tiny-flux", size, steps)


def agreement_wide(size: int = 128, steps: int = 4, views: int = 4) -> None:
    from backend.pipelines import flow_models
    from backend.pipelines.flow_denoise import flow_denoise, make_flow_scheduler
    from backend.pipelines.flux import image_seq_len
    from backend.pipelines.sync import wire
    from backend.pipelines.sync.flow import ViewsVelocity
    from backend.pipelines.sync.fusion import TexelMap, spread
    from backend.pipelines.sync.step import SyncHook
    from flow_step import build
    from sync_scene import correspondence

    base, cond, _, _ = build("flux", torch.device("cpu"), torch.float32)
    data, _ = correspondence(views, size, latent_texture=max(4, size // 16))
    lat = wire.parse(data).levels["latent"]
    tmap = TexelMap(lat.index, lat.weight, lat.texels)
    h = w = size // 8
    velocity = ViewsVelocity([(0, views, flow_models.velocity(base, _stacked(cond, views), 3.5, [], h, w))])
    spreads = {}
    for label, fraction in LABELS:
        sched = make_flow_scheduler(base.scheduler_config, steps, image_seq_len(size, size, 8), torch.device("cpu"))
        latents = tmap.render_noise(16, torch.Generator().manual_seed(1))
        hook = SyncHook(tmap, sched, sched.timesteps, fraction)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = flow_denoise(velocity, sched, sched.timesteps, latents, lambda: False, lambda *a: None, None, hook)
        spreads[label] = spread(tmap, out)
        print(f"FLUX-shaped (3072 wide, 2+4 blocks) {size}² {label:10s}: latent spread {spreads[label]:.4f}, "
              f"{time.perf_counter() - t0:.1f} s")
    _ratios("wide", spreads)


def _stacked(cond, views: int):  # noqa: ANN001, ANN202
    from backend.pipelines.flow_prompt import FlowConditioning

    return FlowConditioning(cond.embeds.expand(views, -1, -1), cond.pooled.expand(views, -1), cond.text_ids, False)


def fusion_share(size: int, views: int) -> None:
    from backend.pipelines import flow_models
    from backend.pipelines.sync.fusion import TexelMap
    from flow_step import build

    rng = np.random.default_rng(0)
    h = w = size // 8
    idx = np.full((views, h, w), -1, np.int32)  # ~55 % of each view on the object, neighbouring texels
    yy, xx = np.mgrid[0:h, 0:w]
    side = int(h * 1.4)
    for v in range(views):
        on = (xx - h / 2) ** 2 + (yy - h / 2) ** 2 < (0.42 * h) ** 2
        t = ((yy * side // h) * side + (xx * side // w) + v * (side * side // 16)) % (3 * side * side)
        idx[v][on] = t[on]
    wts = np.where(idx >= 0, rng.random((views, h, w)), 0).astype(np.float32)
    tmap = TexelMap(idx, wts, 3 * side * side)
    x0 = torch.randn(views, 16, h, w)
    tmap.fuse(x0, 2.0)
    reps = 10
    t0 = time.perf_counter()
    for _ in range(reps):
        tmap.fuse(x0, 3.0)
    fuse = (time.perf_counter() - t0) / reps
    base, cond, _, _ = build("flux", torch.device("cpu"), torch.float32)
    velocity = flow_models.velocity(base, cond, 3.5, [], h, w)
    x = torch.randn(1, 16, h, w)
    t = torch.tensor(500.0)
    with torch.inference_mode():
        velocity(x, t, 0, 4)  # warm-up
        t0 = time.perf_counter()
        velocity(x, t, 1, 4)
        one = time.perf_counter() - t0
    step = one * views
    print(f"fusion of {views} views' x0 (16x{h}x{w}, {len(tmap.pix)} pixels -> {tmap.texels} texels): "
          f"{fuse * 1000:.1f} ms; FLUX-shaped transformer (3072 wide, 2+4 blocks), 1 view at {size}²: {one:.1f} s "
          f"-> step of {views} views ~{step:.1f} s (real depth 19+38 blocks: ~{step * 9.5:.0f} s)")
    print(f"RATIO sync_flow_fusion_share {fuse / step:.5f}   (real depth, estimated: {fuse / (step * 9.5):.6f})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="agreement,wide,fusion")
    ap.add_argument("--size", type=int, default=512, help="image side for the fusion share")
    ap.add_argument("--views", type=int, default=8)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    parts = args.parts.split(",")
    if "agreement" in parts:
        agreement_tiny()
    if "wide" in parts:
        agreement_wide()
    if "fusion" in parts:
        fusion_share(args.size, args.views)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
