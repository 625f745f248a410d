"""Warp accuracy: frame t−1's render warped by Blender's Vector pass against frame t, in the same run.

    .venv-blender/bin/python bench/warp_accuracy.py [--size 320 192] [--samples 32]

The issue 5 check, the warp alone (no diffusion): two consecutive frames of an animated scene (a
wall and a cube, each with an emission noise texture; ``tests/blender/motion_scenes.py``) rendered
with the add-on's ``extract_passes(..., color=True, vector=True)``; frame t−1's colour is warped
into frame t by ``core.flow``. Baseline: not warping (frame t−1 against frame t directly, on the
same pixels). Cases: pure camera motion (the camera translates: the wall's image moves 2 px right,
1 px up a frame, the cube's by more, parallax) and object motion (the cube moves 3.4 px right,
0.6 px up; the camera is still).

Reports, per case: mean absolute error (0..255 sRGB, averaged over RGB) on valid pixels (not
disoccluded), also with the mask dilated by 1 px (what inpainting would cover), and split into
pixels away from the cube's silhouettes vs near them; the disoccluded fraction; the flow/warp/mask
maths' time. Prints ``RATIO warp_<case> <warped/unwarped>`` (lower is better).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import bpy
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "blender"))
from addon.blender.extract import extract_passes  # noqa: E402
from addon.core import flow  # noqa: E402
from motion_scenes import motion_scene  # noqa: E402

CASES = {"camera": (2.0, 1.0), "object": (3.4, 0.6)}


def measure(kind: str, size: tuple[int, int], samples: int) -> dict[str, float]:
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    objs = motion_scene(scene, kind, size[0], CASES[kind])
    prev = extract_passes(scene, objs["camera"], size, frame=1, color=True, color_samples=samples)
    cur = extract_passes(scene, objs["camera"], size, frame=2, color=True, color_samples=samples, vector=True)
    t0 = time.perf_counter()
    f = flow.flow_to_previous(cur.raw["vector"])
    occluded = flow.disocclusion_mask(
        f, cur.raw["depth"], prev.raw["depth"], object_id_t=cur.raw["object_id"], object_id_prev=prev.raw["object_id"]
    )
    warped, _ = flow.warp(prev.color, f)
    maths = time.perf_counter() - t0
    error = np.abs(warped - cur.color.astype(np.float32)).mean(axis=-1)
    unwarped = np.abs(prev.color.astype(np.float32) - cur.color.astype(np.float32)).mean(axis=-1)
    valid = ~occluded
    valid1 = ~flow.dilate(occluded, 1)
    cube = next(i for i, name in cur.objects.items() if name == "Cube")
    band = np.zeros_like(valid)
    for ids in (cur.raw["object_id"], prev.raw["object_id"]):
        band |= flow.dilate(ids == cube, 2) & flow.dilate(ids != cube, 2)
    return {
        "warped": float(error[valid].mean()),
        "warped_dilated": float(error[valid1].mean()),
        "unwarped": float(unwarped[valid].mean()),
        "away": float(error[valid & ~band].mean()),
        "near": float(error[valid & band].mean()),
        "p99": float(np.percentile(error[valid], 99)),
        "disoccluded": float(occluded.mean()),
        "maths_ms": maths * 1000.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=[320, 192], metavar=("W", "H"))
    parser.add_argument("--samples", type=int, default=32, help="colour render samples")
    args = parser.parse_args()
    size = (args.size[0], args.size[1])
    print(f"Blender {bpy.app.version_string}, {size[0]}x{size[1]}, colour {args.samples} spp")
    for kind in CASES:
        m = measure(kind, size, args.samples)
        print(
            f"{kind} motion: mean abs error on valid pixels warped {m['warped']:.3f}/255 "
            f"(mask dilated 1 px: {m['warped_dilated']:.3f}; away from silhouettes {m['away']:.3f}, near them "
            f"{m['near']:.3f}; p99 {m['p99']:.2f}), unwarped {m['unwarped']:.3f}/255, "
            f"disoccluded {100 * m['disoccluded']:.2f} %, flow+mask+warp {m['maths_ms']:.1f} ms"
        )
        print(f"RATIO warp_{kind} {m['warped'] / m['unwarped']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
