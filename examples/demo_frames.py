"""The demo's concept-frame step: a short sequence of the blockout's camera dolly into ``out/frames/``.

Called by examples/demo.py once the backend runs and the blockout scene is built:

    demo_frames.run(api, scene, out, model=model, size=256, steps=10, prompt=..., seed=...)

Renders frames 1..``frames`` (default 6) through ``api.stylize_frames`` with consistency on (frame 1
generates; later frames warp the previous one along the Vector pass, inpaint what came into view and
refresh lightly), one seed and one depth range over the whole shot, and — when Blender has FFmpeg —
``out/frames/scenecast_frames_0001-0006.mp4``. A second ``make demo`` reuses finished frames (resume)
unless the settings changed, in which case the folder is started afresh.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def run(api: Any, scene: Any, out: Path, *, model: str, size: int, steps: int, prompt: str, seed: int,
        frames: int = 6) -> Any:
    """Stylize frames 1..``frames`` of ``scene`` into ``out/frames``; returns the ``FramesResult``."""
    import importlib

    import bpy

    errors = importlib.import_module(api.__name__.rsplit(".", 1)[0] + ".core.errors")
    folder = out / "frames"
    t0 = time.monotonic()
    video = bool(getattr(bpy.app.build_options, "codec_ffmpeg", False))
    settings = dict(prompt=prompt, model=model, seed=seed, steps=steps, width=size, height=size, video=video)
    try:
        result = api.stylize_frames(scene, 1, frames, str(folder), **settings)
    except errors.ScenecastError as exc:  # frames of an earlier demo with other settings: start afresh
        print(f"  {exc.message}: restarting the range")
        result = api.stylize_frames(scene, 1, frames, str(folder), restart=True, **settings)
    record = result.record
    times = [f["timings"]["total"] for f in record["frames"].values() if "timings" in f]
    flicker = record.get("flicker_mean")
    print(f"frames 1-{frames} → {folder} in {time.monotonic() - t0:.1f} s"
          f" ({len(result.made)} made, {len(result.skipped)} kept; {sum(times) / max(1, len(times)):.2f} s/frame;"
          + (f" flicker {flicker:.2f}" if flicker is not None else "") + ")")
    if record.get("outputs", {}).get("video"):
        print(f"video: {record['outputs']['video']}")
    return result
