"""Texture objects of a .blend headless, one run per object — the render-farm entry of Scenecast's texturing.

    blender -b scene.blend --python examples/texture_objects.py -- --objects Car "Building.L1" --out //textures \\
        --prompt "hand-painted game texture" --seed 7 [--views 6] [--size 512] [--texture-size 1024] [--server URL]

    # bpy as a Python module (what the tests use): the .blend is an option
    .venv-blender/bin/python examples/texture_objects.py --blend scene.blend --objects Car --out textures ...

For each object: multi-view texturing from its own rig of views (``api.texture_objects``), then
``<out>/<object>.png`` (the texture in its UV layout) and ``<out>/<object>.json`` (prompt, seed, views,
coverage, notes, job ids). The .blend is never saved, so any number of machines can work on one file at
once, each on its own objects (tools/flamenco/scenecast_texture_objects.js splits a batch that way).
An object whose PNG and JSON exist is skipped, so a re-run continues (``--restart`` redoes them).
Exit status: 0 done, 1 failed, 2 bad arguments, 130 cancelled.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylize_frames import ADDON_MODULE, failure_exit_code, open_scene  # noqa: E402 - the same add-on bootstrap


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="texture_objects.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", nargs="+", required=True, metavar="NAME", help="mesh objects, one run each")
    parser.add_argument("--out", required=True, help="output folder (// = next to the .blend)")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--negative", default=None)
    parser.add_argument("--seed", type=int, default=None, help="one seed for every object (default: the scene's)")
    parser.add_argument("--views", type=int, default=6, help="rig views around each object")
    parser.add_argument("--size", type=int, default=None, help="view size in pixels (default: the scene's)")
    parser.add_argument("--texture-size", type=int, default=1024, help="texels per side")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--server", default=None, help="backend URL (default: the add-on preference)")
    parser.add_argument("--scene", default=None, help="scene name (default: the active scene)")
    parser.add_argument("--restart", action="store_true", help="redo objects whose texture exists")
    parser.add_argument("--blend", default=None, help="the .blend to open (bpy as a module only)")
    parser.add_argument("--extension", default=None, help="the add-on zip to install when it is not enabled")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    import bpy

    opened = open_scene(args.blend, args.extension, args.scene)
    if opened is None:
        return 2
    api, scene = opened
    missing = [name for name in args.objects if scene.objects.get(name) is None]
    if missing:
        print(f"error: no object {', '.join(map(repr, missing))} in scene {scene.name!r}", file=sys.stderr)
        return 2
    out = Path(bpy.path.abspath(args.out))
    out.mkdir(parents=True, exist_ok=True)
    errors = importlib.import_module(ADDON_MODULE + ".core.errors")
    made, kept = [], []
    try:
        for name in args.objects:
            png, record = out / f"{name}.png", out / f"{name}.json"
            if png.exists() and record.exists() and not args.restart:
                kept.append(name)
                continue
            t0 = time.monotonic()
            result = api.texture_objects(
                [scene.objects[name]], prompt=args.prompt, views=args.views, model=args.model, server=args.server,
                scene=scene, size=args.size, texture_size=args.texture_size, negative_prompt=args.negative,
                seed=args.seed, steps=args.steps,
            )
            image = result[scene.objects[name]]
            image.save(filepath=str(png))
            summary = {"object": name, "prompt": args.prompt, "seed": args.seed, "views": args.views,
                       "coverage": result.coverage.get(name), "notes": list(result.notes),
                       "jobs": [v.get("job_id") for v in result.views if isinstance(v, dict) and v.get("job_id")],
                       "seconds": round(time.monotonic() - t0, 2), "texture": png.name}
            tmp = record.with_suffix(".json.part")
            tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
            os.replace(tmp, record)  # the record last: its presence says the object is done
            made.append(name)
            print(f"Scenecast: {name}: {png} ({100 * (summary['coverage'] or 0):.1f}% of texels seen)", flush=True)
    except (errors.ScenecastError, ValueError) as exc:
        return failure_exit_code(exc)
    finally:
        importlib.import_module(ADDON_MODULE + ".core.backend_process").stop_started()
    print(f"Scenecast: textured {', '.join(made) or 'none'}; kept {', '.join(kept) or 'none'}")
    return 0


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    sys.exit(main(argv))
