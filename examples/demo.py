"""Scenecast demo: headless Blender builds a street blockout, extracts passes, generates, writes out/.

    .venv-blender/bin/python examples/demo.py --out out        # what `make demo` runs

Steps, all through the installed extension the way a user has it:
1. build the extension zip (tools/build_extension.py) and install it into a throwaway Blender user
   folder (``BLENDER_USER_RESOURCES``, default ``.cache/blender-user``) with ``package_install_files``;
2. build the blockout scene (examples/blockout_scene.py), each object with a segmentation class;
3. ``api.extract_passes`` → ``out/passes/{depth,normal,edges,segmentation}.png``;
4. ``api.generate`` through a local backend the add-on starts itself (Backend Python from
   ``SCENECAST_BACKEND_PYTHON`` or the checkout's ``.venv``) with the default model — or
   ``builtin:tiny`` when offline (``HF_HUB_OFFLINE=1``), which it says — and copies the results to
   ``out/``;
5. multi-view textures, synchronized mode (every view of an object in one fused job), for the car
   and a building (examples/demo_texture.py) →
   ``out/texture/<object>.png`` and renders of the textured objects from new angles;
6. a short concept-frame sequence of the blockout's camera dolly (examples/demo_frames.py) →
   ``out/frames/frame_####.png`` + its record (and an MP4 when Blender has FFmpeg); the backend it
   started is stopped at the end.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDON_MODULE = "bl_ext.user_default.scenecast"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="output folder (default out/)")
    parser.add_argument("--prompt", default="a narrow european street at dusk, wet cobblestones, warm shop lights")
    parser.add_argument("--size", type=int, default=None,
                        help="width and height in pixels, a multiple of 8 (default 512; 256 with builtin:tiny)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 20; 10 with builtin:tiny)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--model", default=None, help="base model (default: the add-on's default model)")
    parser.add_argument("--server", default=None, help="backend URL (default: the add-on preference)")
    args = parser.parse_args(argv)
    out = args.out.resolve()

    os.environ.setdefault("BLENDER_USER_RESOURCES", str(ROOT / ".cache" / "blender-user"))
    os.environ.setdefault("XDG_CACHE_HOME", str(ROOT / ".cache"))
    sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "examples")]
    import bpy  # after BLENDER_USER_RESOURCES: Blender reads it on import

    import blockout_scene
    import build_extension

    t0 = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix="scenecast-demo-"))
    zip_path = build_extension.build(staging / "dist", staging / "staging")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True
    )
    shutil.rmtree(staging, ignore_errors=True)
    if result != {"FINISHED"} or ADDON_MODULE not in bpy.context.preferences.addons:
        print(f"error: installing {zip_path} did not enable {ADDON_MODULE}", file=sys.stderr)
        return 1
    api = importlib.import_module(ADDON_MODULE + ".api")
    print(f"installed the extension from {zip_path.name} as {ADDON_MODULE}")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("0", "false", "no", "off"):
        # Asked to go online: grant Blender's "Allow Online Access", which headless Blender starts without
        # and which the add-on respects (the backend may then download the default model).
        bpy.context.preferences.system.use_online_access = True

    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.output_dir = str(out / "results")
    prefs.auto_start = True
    if args.server:
        prefs.server_url = args.server
    checkout_python = ROOT / ".venv" / "bin" / "python"
    if not os.environ.get("SCENECAST_BACKEND_PYTHON") and checkout_python.is_file():
        prefs.backend_python = str(checkout_python)  # this checkout's backend venv (make venv)

    # The backend first (the same operator as the Start Backend button; it blocks in background mode),
    # so the model can be chosen — and the run sized — before anything is rendered.
    print(f"starting a local backend for {prefs.server_url} unless one answers there (first start imports torch)…")
    try:
        bpy.ops.scenecast.start_backend()
    except RuntimeError as exc:  # the operator's ERROR report: what went wrong and the fix
        print(f"error: {exc}", file=sys.stderr)
        return 1
    client = importlib.import_module(ADDON_MODULE + ".core.client")
    remote_job = importlib.import_module(ADDON_MODULE + ".core.remote_job")
    model, note = remote_job.choose_model(client.BackendClient(prefs.server_url, prefs.token or None),
                                          args.model, prefs.default_model)
    tiny = model == remote_job.OFFLINE_MODEL
    if note:
        print(f"NOTE: {note}")
    size = args.size or (256 if tiny else 512)
    steps = args.steps or (10 if tiny else 20)
    print(f"model {model}, {size}×{size}, {steps} steps" + (" (smaller: builtin:tiny makes noise anyway)" if tiny else ""))

    scene = blockout_scene.build("Blockout", resolution=(size, size), scene=bpy.context.scene)
    print(f"built the blockout scene: {len(scene.objects)} objects, camera {scene.camera.name}")

    passes = api.extract_passes(scene, resolution=(size, size))
    png = importlib.import_module(ADDON_MODULE + ".core.png")
    (out / "passes").mkdir(parents=True, exist_ok=True)
    for name, arr in passes.control.items():
        (out / "passes" / f"{name}.png").write_bytes(png.encode_png(arr))
    near, far = passes.depth_range.near, passes.depth_range.far
    print(f"passes ({', '.join(passes.control)}) → {out / 'passes'}; depth range {near:.2f}–{far:.2f} scene units")

    units = [
        {"type": "depth", "weight": 1.0, "start": 0.0, "end": 1.0},
        {"type": "edges", "weight": 0.6, "start": 0.0, "end": 0.8},
        {"type": "segmentation", "weight": 0.5, "start": 0.0, "end": 0.6},
    ]
    last_step = [0]

    def progress(event) -> None:
        if event.type == "step":
            step, total = event.data.get("step", 0), event.data.get("steps", 0)
            if step == total or step - last_step[0] >= max(1, total // 5):
                last_step[0] = step
                print(f"  step {step}/{total}", flush=True)

    images = api.generate(
        scene, prompt=args.prompt, model=model, seed=args.seed, steps=steps, width=size, height=size,
        units=units, on_event=progress, preview_every=0,
    )
    for image in images:
        src = Path(bpy.path.abspath(image.filepath))
        print(f"result: {src} ({image.size[0]}×{image.size[1]}, model {image['scenecast_model']},"
              f" job {image['scenecast_job']})")
    import demo_texture  # multi-view textures for a few objects, rendered from new angles: out/texture/

    demo_texture.run(api, scene, out, model=model, size=min(size, 256), steps=steps, seed=args.seed)
    import demo_frames  # the concept-frame sequence of the camera dolly: out/frames/

    demo_frames.run(api, scene, out, model=model, size=size, steps=steps, prompt=args.prompt, seed=args.seed)
    backend_process = importlib.import_module(ADDON_MODULE + ".core.backend_process")
    backend_process.stop_started()
    print(f"done in {time.monotonic() - t0:.1f} s: passes in {out / 'passes'}, results in {out / 'results'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
