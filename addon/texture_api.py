"""The settings half of ``api.texture_objects``: call arguments, scene settings and preferences → one run.

Kept apart from ``api`` so the scripting face stays a list of short functions; the run itself is
``blender.texturing.texture_steps``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import bpy

from .blender.texturing import FIRST_VIEW_UNITS, TextureResult, TextureSettings, texture_steps
from .core import camera_rig
from .core.job_chain import run_blocking
from .core.jobspec import validate_size

#: View size used when neither the call nor the scene sets one.
DEFAULT_VIEW_SIZE = 512


def settings_for(
    scene: bpy.types.Scene,
    prompt: str | None,
    *,
    model: str | None = None,
    server: str | None = None,
    negative_prompt: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    size: int | None = None,
    texture_size: int = 1024,
    material: str = "new",
    units: Iterable[Mapping[str, Any]] | None = None,
    coverage_threshold: float = 0.3,
    mask_grow_px: int | None = None,
    fill_unseen: bool = True,
    isolate: bool = True,
    timeout: float | None = None,
    output_dir: str | None = None,
    weight_params: Mapping[str, float] | None = None,
) -> TextureSettings:
    """A validated :class:`TextureSettings`; ``None`` arguments take the scene's Scenecast settings."""
    from . import api  # the shared helpers (output folder); api imports this module lazily

    s = getattr(scene, "scenecast", None)
    text = prompt if prompt is not None else (s.prompt if s is not None else "")
    if not text or not text.strip():
        raise ValueError("the prompt is empty: describe the look of the objects, e.g. prompt=\"weathered red brick\"")
    side = int(size if size is not None else (s.width if s is not None else DEFAULT_VIEW_SIZE))
    validate_size(side, side)
    if not 8 <= int(texture_size) <= 16384:
        raise ValueError(f"texture_size {texture_size}: use 8..16384 texels per side (default 1024)")
    if not 0.0 < coverage_threshold:
        raise ValueError(f"coverage_threshold must be above 0, got {coverage_threshold}")
    params = {
        "prompt": text,
        "negative_prompt": negative_prompt if negative_prompt is not None else (s.negative_prompt if s is not None else None),
        "seed": int(seed if seed is not None else (s.seed if s is not None else 0)),
        "steps": steps if steps is not None else (s.steps if s is not None else None),
        "guidance": guidance if guidance is not None else (s.guidance if s is not None else None),
        "width": side,
        "height": side,
        "preset": None,
        "preview_every": int(s.preview_every) if s is not None else 0,
    }
    request_fields = api.request_fields(scene, model, server, timeout, output_dir)
    unit_list = [dict(u) for u in units] if units is not None else [dict(u) for u in FIRST_VIEW_UNITS]
    return TextureSettings(
        base_params=params, request_fields=request_fields, texture_size=(int(texture_size), int(texture_size)),
        material=material, units=unit_list, inpaint_units=unit_list, coverage_threshold=float(coverage_threshold),
        mask_grow_px=int(mask_grow_px if mask_grow_px is not None else max(1, side // 64)), fill_unseen=bool(fill_unseen), isolate=bool(isolate),
        # Feathering is in view pixels: 8 px at 512² (core's default), scaled with the view size.
        weight_params={"feather_px": max(2.0, side / 64.0), **dict(weight_params or {})},
    )


def texture_objects(
    scene: bpy.types.Scene,
    objects: Iterable[bpy.types.Object],
    settings: TextureSettings,
    views: int | Sequence[bpy.types.Object] = 6,
    elevations: Sequence[float] = camera_rig.DEFAULT_ELEVATIONS,
    on_event: Callable[[Any], None] | None = None,
    on_view: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> TextureResult:
    """Run the whole chain in this thread (see ``api.texture_objects``)."""
    result = run_blocking(texture_steps(scene, list(objects), settings, views, elevations, on_view),
                          on_event=on_event, cancel=cancel)
    for note in result.notes:
        print(f"Scenecast: {note}")
    return result
