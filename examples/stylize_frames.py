"""Stylize a frame range of a .blend headless — the render-farm entry of Scenecast's frame sequences.

    blender -b shot.blend --python examples/stylize_frames.py -- --start 1 --end 48 --out //frames \\
        --prompt "a rainy street at dusk" --seed 7 [--depth-range 0.5 80] [--model ID] [--server URL]

    # bpy as a Python module (what the tests use): the .blend is an option
    .venv-blender/bin/python examples/stylize_frames.py --blend shot.blend --start 1 --end 48 --out frames ...

Writes ``frame_####.png`` per frame and ``scenecast_frames_<start>-<end>.json`` (settings, depth range,
seed, per-frame job ids, timings, flicker) into ``--out``; a second run over the same range continues at
the first missing frame. Split a shot over machines by giving each a range (same ``--seed``, and the
same depth range: by default it is computed from the bounds over the scene's whole frame range, which
every machine computes alike; ``--depth-range NEAR FAR`` fixes it). The first frame of each range is
generated fresh (no warp across machines). Exit status: 0 done, 1 failed, 2 bad arguments, 130 cancelled.

The add-on: used as it is when ``bl_ext.user_default.scenecast`` is enabled; enabled when installed
but off; otherwise installed from ``--extension ZIP`` or, in a checkout, built from it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ADDON_MODULE = "bl_ext.user_default.scenecast"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stylize_frames.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=int, required=True, help="first frame")
    parser.add_argument("--end", type=int, required=True, help="last frame (inclusive)")
    parser.add_argument("--out", required=True, help="output folder (// = next to the .blend)")
    parser.add_argument("--prompt", default=None, help="default: the scene's Scenecast prompt")
    parser.add_argument("--negative", default=None)
    parser.add_argument("--seed", type=int, default=None, help="one seed for every frame (default: the scene's)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--size", type=int, nargs="+", default=None, metavar="PX", help="width [height]")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--server", default=None, help="backend URL (default: the add-on preference)")
    parser.add_argument("--camera", default=None, help="camera object (default: the scene camera)")
    parser.add_argument("--scene", default=None, help="scene name (default: the active scene)")
    parser.add_argument("--depth-range", type=float, nargs=2, default=None, metavar=("NEAR", "FAR"))
    parser.add_argument("--shot", type=int, nargs=2, default=None, metavar=("START", "END"),
                        help="frames whose bounds give the depth range (default: the scene's frame range)")
    parser.add_argument("--no-consistency", action="store_true", help="every frame independent (same seed)")
    parser.add_argument("--hole-strength", type=float, default=1.0)
    parser.add_argument("--refresh-strength", type=float, default=0.3)
    parser.add_argument("--restart", action="store_true", help="redo the range's finished frames")
    parser.add_argument("--video", action="store_true", help="also an MP4 of the range (Blender's FFmpeg)")
    parser.add_argument("--blend", default=None, help="the .blend to open (bpy as a module only)")
    parser.add_argument("--extension", default=None, help="the add-on zip to install when it is not enabled")
    return parser.parse_args(argv)


def addon_api(zip_path: str | None) -> ModuleType:
    """The add-on's api module: enabled as it is, else enabled, else installed (zip or built here)."""
    import addon_utils
    import bpy

    if ADDON_MODULE not in bpy.context.preferences.addons:
        if any(m.__name__ == ADDON_MODULE for m in addon_utils.modules(refresh=True)):
            bpy.ops.preferences.addon_enable(module=ADDON_MODULE)
        else:
            if zip_path is None:
                sys.path.insert(0, str(ROOT / "tools"))
                import build_extension

                staging = Path(tempfile.mkdtemp(prefix="scenecast-ext-"))
                zip_path = str(build_extension.build(staging / "dist", staging / "staging"))
            bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    if ADDON_MODULE not in bpy.context.preferences.addons:
        raise SystemExit(f"error: the Scenecast add-on ({ADDON_MODULE}) could not be enabled")
    return importlib.import_module(ADDON_MODULE + ".api")


def failure_exit_code(exc: Exception) -> int:
    """Print ``exc`` (with its fix) and give the script's exit code: 130 for a cancelled job, 1 for a
    failed job or any other Scenecast error, 2 for a bad argument (``ValueError``)."""
    fix = getattr(exc, "fix", "")
    message = getattr(exc, "message", None)
    if message is None:  # a plain ValueError: bad input to the call
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"error: {message}" + (f" Fix: {fix}" if fix else ""), file=sys.stderr)
    return 130 if getattr(exc, "status", None) == "cancelled" else 1


def open_scene(blend: str | None, extension: str | None, scene_name: str | None) -> tuple[ModuleType, Any] | None:
    """Open ``blend`` (bpy as a module), enable the add-on and find the scene (the active one when
    ``scene_name`` is empty): (the add-on's api, the scene), or None after printing what is missing."""
    import bpy

    if blend:
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(blend))
    api = addon_api(extension)
    scene = bpy.data.scenes.get(scene_name) if scene_name else bpy.context.scene
    if scene is None:
        print(f"error: no scene {scene_name!r}; the file has {', '.join(s.name for s in bpy.data.scenes)}",
              file=sys.stderr)
        return None
    return api, scene


def main(argv: list[str]) -> int:
    args = parse(argv)
    import bpy

    opened = open_scene(args.blend, args.extension, args.scene)
    if opened is None:
        return 2
    api, scene = opened
    camera = bpy.data.objects.get(args.camera) if args.camera else None
    if args.camera and camera is None:
        print(f"error: no object {args.camera!r} in the file", file=sys.stderr)
        return 2
    size = args.size or [None]
    width, height = size[0], size[-1]
    errors = importlib.import_module(ADDON_MODULE + ".core.errors")
    try:
        result = api.stylize_frames(
            scene, args.start, args.end, bpy.path.abspath(args.out), prompt=args.prompt, model=args.model,
            server=args.server, negative_prompt=args.negative, seed=args.seed, steps=args.steps,
            width=width, height=height, preset=args.preset, camera=camera, depth_range=args.depth_range,
            shot_range=tuple(args.shot) if args.shot else None, consistency=not args.no_consistency,
            hole_strength=args.hole_strength, refresh_strength=args.refresh_strength, restart=args.restart,
            video=args.video,
        )
    except (errors.ScenecastError, ValueError) as exc:
        return failure_exit_code(exc)
    finally:
        importlib.import_module(ADDON_MODULE + ".core.backend_process").stop_started()
    record = result.record
    near, far = record["settings"]["depth_range"]
    print(f"Scenecast: frames {args.start}-{args.end}: made {result.made or 'none'}, kept {result.skipped or 'none'};"
          f" depth range {near:.3f}-{far:.3f} ({record['settings']['depth_source']}), seed {record['settings']['seed']};"
          f" record {result.record_path}")
    return 0


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    sys.exit(main(argv))
