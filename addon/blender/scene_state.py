"""Snapshot and restore every scene setting pass extraction touches, also when extraction fails.

Extraction renders with settings of its own (Cycles on the CPU, 1 sample, data passes, a clay
material override, a multilayer EXR output); the user's scene must come back exactly as it was.
``preserved_scene_state(scene, view_layer)`` captures the values below, yields, and writes them back
in capture order (order matters: an image format's ``media_type`` before ``file_format`` before
``color_depth``), whether the body returned or raised. Only the data API is used, never ``bpy.ops``,
so nothing lands on the undo stack and it works in background mode.

What is kept (``capture_state`` returns it as a plain dict, which tests compare before and after):

- render: engine, resolution x/y/percentage, border/crop, film transparency, output path, output
  image format (media type, file format, colour mode/depth, EXR codec, colour management),
  compositing/sequencer/motion-blur/Freestyle/single-layer/multiview/stamp flags;
- Cycles: device, samples, adaptive sampling, denoising, pixel filter, bounces, seed, time limit;
- colour management: view transform, look, exposure, gamma, display device;
- compositor: which node tree runs (``compat.compositor_state_path``: 4.x, 5.0 and 5.3 differ);
- frame and subframe, active camera;
- the view layer: every ``use_pass_*`` flag (also Cycles' own), material override, samples,
  Freestyle settings and which line sets render, selection and active object;
- ``pass_index`` of every object in ``bpy.data.objects`` (instanced collections included).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bpy

from ..core.errors import ScenecastError
from . import compat

#: Attribute paths relative to the scene, captured and restored in this order when they exist.
SCENE_ATTRIBUTES: tuple[str, ...] = (
    "render.engine",
    "render.resolution_x",
    "render.resolution_y",
    "render.resolution_percentage",
    "render.pixel_aspect_x",
    "render.pixel_aspect_y",
    "render.use_border",
    "render.use_crop_to_border",
    "render.film_transparent",
    "render.filepath",
    "render.use_compositing",
    "render.use_sequencer",
    "render.use_motion_blur",
    "render.use_freestyle",
    "render.use_single_layer",
    "render.use_multiview",
    "render.use_stamp",
    "render.line_thickness_mode",
    "render.line_thickness",
    "render.use_persistent_data",
    "render.image_settings.media_type",  # 5.0+: must precede file_format
    "render.image_settings.file_format",
    "render.image_settings.color_mode",
    "render.image_settings.color_depth",
    "render.image_settings.exr_codec",
    "render.image_settings.use_preview",
    "render.image_settings.color_management",
    "cycles.device",
    "cycles.samples",
    "cycles.use_adaptive_sampling",
    "cycles.use_denoising",
    "cycles.pixel_filter_type",
    "cycles.filter_width",
    "cycles.max_bounces",
    "cycles.diffuse_bounces",
    "cycles.glossy_bounces",
    "cycles.transmission_bounces",
    "cycles.volume_bounces",
    "cycles.transparent_max_bounces",
    "cycles.seed",
    "cycles.use_animated_seed",
    "cycles.time_limit",
    "cycles.use_layer_samples",
    "view_settings.view_transform",
    "view_settings.look",
    "view_settings.exposure",
    "view_settings.gamma",
    "display_settings.display_device",
    "camera",
)

#: View-layer attributes besides the pass flags.
VIEW_LAYER_ATTRIBUTES: tuple[str, ...] = (
    "material_override",
    "samples",
    "use_freestyle",
    "freestyle_settings.mode",
    "freestyle_settings.as_render_pass",
    "freestyle_settings.use_culling",
    "freestyle_settings.crease_angle",
    "freestyle_settings.linesets.active_index",
)


class SceneRestoreError(ScenecastError, RuntimeError):
    """Some settings could not be put back; the message lists them with the values they should have."""


def pass_flag_paths(view_layer: bpy.types.ViewLayer) -> list[str]:
    """Every writable ``use_pass_*`` flag of the view layer and of its Cycles settings."""
    paths = []
    for prefix, owner in (("", view_layer), ("cycles.", getattr(view_layer, "cycles", None))):
        if owner is None:
            continue
        for prop in owner.bl_rna.properties:
            ident = prop.identifier
            if prop.type == "BOOLEAN" and not prop.is_readonly and (
                ident.startswith("use_pass_") or ident == "denoising_store_passes"
            ):
                paths.append(prefix + ident)
    return paths


def capture_state(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> dict[str, Any]:
    """The settings extraction may change, as ``{"scene.render.engine": value, ...}`` (IDs by reference)."""
    state: dict[str, Any] = {}
    for path in (*SCENE_ATTRIBUTES, compat.compositor_state_path(scene)):
        found, value = _get(scene, path)
        if found:
            state["scene." + path] = value
    state["scene.frame"] = (scene.frame_current, scene.frame_subframe)
    for path in (*VIEW_LAYER_ATTRIBUTES, *pass_flag_paths(view_layer)):
        found, value = _get(view_layer, path)
        if found:
            state["view_layer." + path] = value
    state["view_layer.linesets"] = tuple((ls.name, ls.show_render) for ls in view_layer.freestyle_settings.linesets)
    state["view_layer.active"] = view_layer.objects.active
    state["view_layer.selected"] = frozenset(o.name for o in view_layer.objects if o.select_get(view_layer=view_layer))
    state["objects.pass_index"] = {o.name: o.pass_index for o in bpy.data.objects}
    return state


def restore_state(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, state: dict[str, Any]) -> list[str]:
    """Write ``state`` back; returns what could not be restored (empty when all went back)."""
    failed: list[str] = []
    for key, value in state.items():
        owner_name, _, path = key.partition(".")
        try:
            if owner_name == "scene" and path == "frame":
                if (scene.frame_current, scene.frame_subframe) != value:
                    scene.frame_set(value[0], subframe=value[1])
            elif owner_name == "scene":
                _set(scene, path, value)
            elif key == "view_layer.linesets":
                shown = dict(value)
                for lineset in view_layer.freestyle_settings.linesets:
                    if lineset.name in shown and lineset.show_render != shown[lineset.name]:
                        lineset.show_render = shown[lineset.name]
            elif key == "view_layer.active":
                if view_layer.objects.active != value:
                    view_layer.objects.active = value  # type: ignore[assignment]  # None is valid: no active object
            elif key == "view_layer.selected":
                for obj in view_layer.objects:
                    selected = obj.name in value
                    if obj.select_get(view_layer=view_layer) != selected:
                        obj.select_set(selected, view_layer=view_layer)
            elif owner_name == "view_layer":
                _set(view_layer, path, value)
            elif key == "objects.pass_index":
                for name, index in value.items():
                    target = bpy.data.objects.get(name)
                    if target is not None and target.pass_index != index:
                        target.pass_index = index
        except (AttributeError, TypeError, ValueError, ReferenceError, RuntimeError) as exc:
            failed.append(f"{key} = {value!r} ({exc})")
    return failed


@contextmanager
def preserved_scene_state(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> Iterator[dict[str, Any]]:
    """Run the body with the scene's settings captured; put them all back afterwards, even on error.

    If the body raised, its exception propagates (a restore failure is then only chained to it);
    if it returned and something could not be put back, ``SceneRestoreError`` says what.
    """
    state = capture_state(scene, view_layer)
    try:
        yield state
    except BaseException as body_error:
        failed = restore_state(scene, view_layer, state)
        if failed:
            raise body_error from SceneRestoreError("; ".join(failed))
        raise
    failed = restore_state(scene, view_layer, state)
    if failed:
        raise SceneRestoreError("could not restore: " + "; ".join(failed), "set these back by hand (or Ctrl-Z)")


def _get(owner: Any, path: str) -> tuple[bool, Any]:
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part, None)
        if owner is None:
            return False, None
    if not hasattr(owner, name):
        return False, None
    return True, getattr(owner, name)


def _set(owner: Any, path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    if getattr(owner, name) != value:
        setattr(owner, name, value)
