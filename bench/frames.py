"""Frame sequences: time per frame split into passes, warp, transport and diffusion, and flicker,
with consistency on (refresh 0.3, and refresh 0) against off (the baseline), in the same run.

    .venv-blender/bin/python bench/frames.py [--size 128] [--frames 6] [--steps 10]

The installed extension (built from this checkout into a throwaway Blender user folder) stylizes
frames 1..N of the demo's blockout dolly (examples/blockout_scene.py) on ``builtin:tiny`` through a
real ``python -m backend serve`` on a free port, three times: consistency on (warp + inpaint holes +
refresh 0.3), on without the refresh, and off (every frame its own generate, same seed). A warm-up job builds the model first.
Per-frame figures come from the run records (passes: the Cycles render of depth/normal/ids/vector and
the control images; warp: flow, warp, hole mask and flicker; diffusion: the backend's started→finished;
transport: the rest of the job's wall time — encoding, HTTP, events, download, atomic write). Baseline
for passes: a plain Cycles render of the same scene (1 sample, CPU). Prints

- ``RATIO frames_flicker_on_vs_off`` — mean flicker with consistency / without (lower is better);
- ``RATIO frames_flicker_no_refresh_vs_off`` — the same with the refresh stage skipped;
- ``RATIO frames_time_on_vs_off`` — seconds per frame with consistency / without;
- ``RATIO frames_passes_vs_render`` — pass extraction (with the Vector pass) / a plain render;
- ``RATIO frames_overhead_share_on`` — (passes + warp + transport) / total per frame, consistency on.

builtin:tiny makes noise from random weights: its flicker figures say what the warp chain holds on to,
not how a real model looks. Its random UNet does not keep an image it re-noises, so its refresh stage
repaints rather than refreshes; and with one seed its independent frames are nearly the same noise in
screen space, a low baseline no real model gives.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDON_MODULE = "bl_ext.user_default.scenecast"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    user = Path(tempfile.mkdtemp(prefix="bench-frames-", dir=ROOT / ".cache"))
    os.environ["BLENDER_USER_RESOURCES"] = str(user)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "examples"), str(ROOT / "tests" / "e2e")]
    import bpy

    import blockout_scene
    import build_extension
    from e2e_support import BackendServer

    zip_path = build_extension.build(user / "dist", user / "staging")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    api = importlib.import_module(ADDON_MODULE + ".api")
    server = BackendServer(user / "backend.log")
    try:
        scene = blockout_scene.build("Bench", resolution=(args.size, args.size), scene=bpy.context.scene)
        tiny = dict(model="builtin:tiny", width=args.size, height=args.size, steps=args.steps, seed=3,
                    server=server.url, prompt="a street at dusk")
        api.stylize_frame(scene, **tiny)  # warm-up: the backend builds the model
        plain = []
        scene.render.engine = "CYCLES"
        scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", 1, False
        for _ in range(4):
            t0 = time.perf_counter()
            bpy.ops.render.render()
            plain.append(time.perf_counter() - t0)
        render_s = statistics.median(plain[1:])
        runs = {}
        for label, consistency, refresh in (("on", True, 0.3), ("on-no-refresh", True, 0.0), ("off", False, 0.3)):
            out = user / f"frames-{label}"
            result = api.stylize_frames(scene, 1, args.frames, str(out), consistency=consistency,
                                        refresh_strength=refresh, **tiny)
            runs[label] = result.record
    finally:
        server.stop()
    print(f"\nBlender {bpy.app.version_string}, {args.size}², {args.frames} frames, {args.steps} steps, builtin:tiny")
    print(f"plain Cycles render (1 sample, CPU): {render_s * 1000:.0f} ms")
    means = {}
    for label, record in runs.items():
        frames = [record["frames"][str(f)] for f in range(1, args.frames + 1)]
        later = frames[1:]  # frame 1 is a generate in both runs
        keys = ("passes", "warp", "transport", "diffusion", "total")
        means[label] = {k: statistics.mean(f["timings"].get(k, 0.0) for f in later) for k in keys}
        holes = [f.get("hole_fraction") or 0.0 for f in later]
        row = ", ".join(f"{k} {means[label][k] * 1000:.0f} ms" for k in keys)
        print(f"consistency {label}: frames 2-{args.frames} per frame: {row};"
              f" flicker {record['flicker_mean']:.2f}; holes {statistics.mean(holes) * 100:.1f} %;"
              f" modes {sorted({f['mode'] for f in later})}")
    on, off = means["on"], means["off"]
    print(f"RATIO frames_flicker_on_vs_off {runs['on']['flicker_mean'] / runs['off']['flicker_mean']:.3f}")
    print(f"RATIO frames_flicker_no_refresh_vs_off {runs['on-no-refresh']['flicker_mean'] / runs['off']['flicker_mean']:.3f}")
    print(f"RATIO frames_time_on_vs_off {on['total'] / off['total']:.3f}")
    print(f"RATIO frames_passes_vs_render {statistics.mean([on['passes'], off['passes']]) / render_s:.3f}")
    print(f"RATIO frames_overhead_share_on {(on['passes'] + on['warp'] + on['transport']) / on['total']:.3f}")
    shutil.rmtree(user, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
