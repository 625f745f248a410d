"""uint8 numpy images (row 0 top) into Blender ``Image`` datablocks, and where to show them.

Blender's ``Image.pixels`` are float RGBA with row 0 at the *bottom*; our arrays are uint8 RGB with
row 0 at the top (``core.conventions``). Control images are data, not colour: they get the
"Non-Color" colour space so Blender shows and saves the exact values.
"""

from __future__ import annotations

import numpy as np

import bpy

from ..core.conventions import flip_rows


def set_pixels(image: bpy.types.Image, rgb: np.ndarray) -> None:
    """Overwrite ``image`` (resized when needed) with an (H, W, 3|4) uint8 array, row 0 top."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3|4) uint8 image, got {a.shape} {a.dtype}")
    h, w = a.shape[:2]
    if tuple(image.size) != (w, h):
        image.scale(w, h)
    rgba = np.ones((h, w, 4), dtype=np.float32)
    rgba[..., : a.shape[2]] = a.astype(np.float32) / 255.0
    image.pixels.foreach_set(flip_rows(rgba).ravel())  # type: ignore[attr-defined]
    image.update()


def image_from_array(name: str, rgb: np.ndarray, non_color: bool = True) -> bpy.types.Image:
    """The image called ``name`` (created if missing) holding ``rgb``; packed so it is saved with the .blend."""
    h, w = rgb.shape[:2]
    image = bpy.data.images.get(name)
    if image is None or image.source != "GENERATED":
        image = bpy.data.images.new(name, w, h, alpha=False)
    if non_color:
        image.colorspace_settings.name = "Non-Color"
    set_pixels(image, rgb)
    image.pack()
    return image


def show_in_image_editors(image: bpy.types.Image, owned_prefix: str = "Scenecast") -> int:
    """Show ``image`` in open Image Editors that show nothing or one of ours; returns how many.

    An editor showing the user's own image is left alone unless it is the only Image Editor.
    """
    wm = bpy.context.window_manager
    editors = [
        area
        for window in wm.windows
        for area in window.screen.areas
        if area.type == "IMAGE_EDITOR"
    ]
    ours = []
    for area in editors:
        shown = area.spaces.active.image
        if shown is None or shown.name.startswith(owned_prefix) or shown.get("scenecast_job"):
            ours.append(area)
    targets = ours or editors[:1]
    for area in targets:
        area.spaces.active.image = image
        area.tag_redraw()
    return len(targets)


# -- reference images (IP-Adapter) ----------------------------------------------------------------------


def read_rgb8(image: bpy.types.Image) -> np.ndarray:
    """``image``'s pixels as (H, W, 3) uint8, row 0 top: the values as stored (sRGB for 8-bit images)."""
    w, h = image.size
    if not w or not h:
        raise ValueError(f"image {image.name!r} has no pixels (missing file?): pick another reference image")
    rgba = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(rgba)  # type: ignore[attr-defined]
    rgb = flip_rows(rgba.reshape(h, w, 4))[..., :3]
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def reference_pixels(value: object) -> np.ndarray:
    """A reference image given as a file path, a Blender image or an (H, W, 3|4) uint8 array, as RGB uint8."""
    if isinstance(value, np.ndarray):
        if value.ndim != 3 or value.shape[2] not in (3, 4) or value.dtype != np.uint8:
            raise ValueError(f"reference: expected an (H, W, 3) uint8 image, got {value.shape} {value.dtype}")
        return np.ascontiguousarray(value[..., :3])
    if isinstance(value, bpy.types.Image):
        return read_rgb8(value)
    if isinstance(value, str):
        import os  # noqa: PLC0415

        path = bpy.path.abspath(value)
        if not os.path.isfile(path):
            raise ValueError(f"reference image {value!r} is not a file: give an image path, a Blender image or 'first view'")
        image = bpy.data.images.load(path, check_existing=False)
        try:
            return read_rgb8(image)
        finally:
            bpy.data.images.remove(image)
    raise ValueError(f"reference {value!r}: give an image path, a Blender image or 'first view'")
