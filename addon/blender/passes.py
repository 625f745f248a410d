"""Render raw passes from a camera with Cycles on the CPU: depth, normals, object ids, clay, colour.

Why Cycles at 1 sample: it runs headless on any machine (no GPU, no display), and data passes
(depth, normal, object index) are exact at the first sample. The pixel filter is a 0.01 px box, so
each pixel's one sample is taken at the pixel centre: passes hold the value *at* that point, with no
anti-aliasing blend of two surfaces at silhouettes (a blend would invent depths in mid-air).

Geometry passes are rendered with a temporary clay material as the view layer's material
override: passes describe geometry, so material bump, displacement and alpha are ignored on
purpose, and the clay shading (emission, noise-free at one sample) comes from the same render.
The optional colour render (img2img source) is a second render with the user's materials.

Every array returned has row 0 at the **top** of the image (OpenEXR stores the top line first;
``exr.read_exr`` keeps that order). Units and spaces:

- ``depth``: (H, W) float32, planar distance along the camera's view axis in scene units (Cycles'
  Depth pass is already planar: tests check a tilted-off-axis pixel of a perpendicular plane), for
  orthographic cameras too; ``inf`` where no surface was hit.
- ``normal``: (H, W, 3) float32 unit vectors in Blender camera space (x right, y up, +z towards
  the viewer), converted from Cycles' world-space Normal pass; zeros where no surface was hit.
- ``object_id``: (H, W) int32, ``-1`` where no surface was hit; ``objects[id]`` is the object's name.
- ``clay``: (H, W) float32 grey in [0, 1], stored as-is (no transfer function), black background.
- ``color``: (H, W, 3) uint8 sRGB (the "Standard" view transform; the scene's own view transform
  and look are not applied), world background visible.
- ``vector``: (H, W, 4) float32, Cycles' Vector pass in pixels of this resolution, Blender's channels
  as-is (measured with bpy 5.0.1 and 4.2, docs/passes.md): 0, 1 = position in frame t−1 minus
  position in frame t; 2, 3 = position in t minus position in t+1; x right, y **up** (only the rows
  are flipped to top-first, not the sign). Zero where no surface was hit. ``core.flow`` converts.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..core.conventions import linear_to_srgb8, normals_world_to_camera
from . import compat, exr
from .render_setup import (  # noqa: F401  (constants re-exported: they document the clay shading)
    CLAY_LIGHT_CAMERA,
    CLAY_OFFSET,
    CLAY_SCALE,
    PassError,
    clay_material,
    configure_render,
    freestyle_lines,
    render_result_image,
    render_slot,
)
from .scene_state import preserved_scene_state

#: Largest number of objects that can get a unique object index (``Object.pass_index`` is a short).
MAX_OBJECTS = 32767
#: Object types that can show up in a render, so get an object id.
RENDERABLE_TYPES = frozenset({"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"})
#: The passes' channel names, by pass (candidates in order: see ``compat`` for renames).
_CHANNELS = {
    "depth": (("Depth.Z",),),
    "normal": (("Normal.X",), ("Normal.Y",), ("Normal.Z",)),
    "index": (compat.OBJECT_INDEX_CHANNELS,),
    "combined": (("Combined.R",), ("Combined.G",), ("Combined.B",), ("Combined.A",)),
    "freestyle": (("Freestyle.A",),),
    "vector": (("Vector.X",), ("Vector.Y",), ("Vector.Z",), ("Vector.W",)),
}


@dataclass
class RawPasses:
    """One camera's passes for one frame; see the module docstring for units and orientation."""

    depth: np.ndarray
    normal: np.ndarray
    object_id: np.ndarray
    objects: dict[int, str]
    camera_matrix_world: np.ndarray
    clay: np.ndarray | None = None
    color: np.ndarray | None = None
    lines: np.ndarray | None = None
    vector: np.ndarray | None = None
    frame: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, True where a surface was hit."""
        return self.object_id >= 0


def render_passes(
    scene: bpy.types.Scene,
    camera: bpy.types.Object,
    resolution: tuple[int, int],
    *,
    frame: int | None = None,
    view_layer: bpy.types.ViewLayer | None = None,
    clay: bool = False,
    color: bool = False,
    color_samples: int = 16,
    freestyle: bool = False,
    vector: bool = False,
) -> RawPasses:
    """Render depth, normal and object-id passes (and clay/colour when asked) from ``camera``.

    ``resolution`` is (width, height) in pixels. ``frame`` defaults to the current frame.
    ``clay``: keep the clay shading of the same render. ``color``: a second render with the user's
    materials at ``color_samples`` samples. ``freestyle``: also draw Freestyle lines (silhouettes,
    borders, creases; 1 px) into ``lines``, (H, W) float32 coverage 0..1 — slower (Freestyle's
    Python stroke pipeline) and with the view layer's own line sets off for this render only.
    ``vector``: also Cycles' Vector pass into ``vector`` (motion to the previous and next frame; only
    written with motion blur off, which the render setup does for the render only).

    The scene's settings, object pass indices and Render Result slot are restored afterwards, also
    on failure (``scene_state.preserved_scene_state``).
    """
    if camera is None or camera.type != "CAMERA":
        raise PassError("no camera: set the scene camera or pass camera=<a camera object>")
    width, height = int(resolution[0]), int(resolution[1])
    if width < 1 or height < 1:
        raise PassError(f"resolution must be positive, got {width}×{height}")
    view_layer = view_layer or _view_layer_of(scene)

    timings: dict[str, float] = {}
    with preserved_scene_state(scene, view_layer), render_slot(), clay_material() as clay_mat, ExitStack() as temp:
        t0 = time.perf_counter()
        if frame is not None and frame != scene.frame_current:
            scene.frame_set(frame)
        scene.camera = camera
        configure_render(scene, view_layer, width, height)
        objects = _assign_object_indices(scene, view_layer)
        color_image = None
        if color:
            color_image = _render_color(scene, view_layer, color_samples)
        view_layer.material_override = clay_mat
        if freestyle:
            temp.enter_context(freestyle_lines(scene, view_layer))
        for path in ("use_pass_z", "use_pass_normal", "use_pass_object_index"):
            setattr(view_layer, path, True)
        if vector:
            view_layer.use_pass_vector = True
        timings["setup"] = time.perf_counter() - t0
        channels = _render_to_channels(scene, view_layer, timings)
        t1 = time.perf_counter()
        camera_matrix = np.array(camera.matrix_world, dtype=np.float64)
        raw = _convert(channels, view_layer.name, objects, camera_matrix, clay)
        if freestyle:
            raw.lines = np.clip(_channel(channels, view_layer.name, "freestyle", 0), 0.0, 1.0).astype(np.float32)
        if vector:
            vectors = [_channel(channels, view_layer.name, "vector", i) for i in range(4)]
            raw.vector = np.stack(vectors, axis=-1).astype(np.float32)
        raw.color = color_image
        raw.frame = scene.frame_current
        timings["convert"] = time.perf_counter() - t1
    raw.timings = timings
    return raw


def _view_layer_of(scene: bpy.types.Scene) -> bpy.types.ViewLayer:
    context_layer = getattr(bpy.context, "view_layer", None)
    if getattr(bpy.context, "scene", None) == scene and context_layer is not None:
        return context_layer
    return scene.view_layers[0]


def _assign_object_indices(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> dict[int, str]:
    """Give every object the render can see a unique ``pass_index`` (1…N, by name); ids are index − 1."""
    names: set[str] = set()
    if getattr(bpy.context, "scene", None) == scene and bpy.context.view_layer == view_layer:
        # Objects instanced from collections outside the scene render too: give them ids as well.
        for instance in bpy.context.evaluated_depsgraph_get().object_instances:
            if instance.object.type in RENDERABLE_TYPES:
                names.add(instance.object.original.name)
    names.update(o.name for o in scene.objects if o.type in RENDERABLE_TYPES)
    ordered = sorted(names)
    if len(ordered) > MAX_OBJECTS:
        raise PassError(f"{len(ordered)} objects: object ids support at most {MAX_OBJECTS}; hide some from render")
    objects: dict[int, str] = {}
    for object_id, name in enumerate(ordered):
        bpy.data.objects[name].pass_index = object_id + 1
        objects[object_id] = name
    return objects


def _render_color(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, samples: int) -> np.ndarray:
    """The user's materials and world at ``samples`` samples, as (H, W, 3) sRGB uint8."""
    scene.cycles.samples = max(1, int(samples))
    scene.render.film_transparent = False
    channels = _render_to_channels(scene, view_layer, {})
    scene.cycles.samples = 1
    scene.render.film_transparent = True
    rgb = np.stack([_channel(channels, view_layer.name, "combined", i) for i in range(3)], axis=-1)
    return linear_to_srgb8(rgb)


def _render_to_channels(
    scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, timings: dict[str, float]
) -> dict[str, np.ndarray]:
    cycles = scene.cycles
    filter_type, filter_width = cycles.pixel_filter_type, cycles.filter_width
    if cycles.samples == 1:  # data passes: one sample at each pixel centre
        cycles.pixel_filter_type, cycles.filter_width = "BOX", 0.01
    path = _temp_exr_path()
    try:
        t0 = time.perf_counter()
        bpy.ops.render.render(write_still=False, layer=view_layer.name, scene=scene.name)
        t1 = time.perf_counter()
        result = render_result_image()
        if result is None:
            raise PassError("Blender produced no render result; is the scene's camera in the view layer?")
        result.save_render(path, scene=scene)
        t2 = time.perf_counter()
        channels = exr.read_exr(path)
        timings["render"] = timings.get("render", 0.0) + t1 - t0
        timings["write_exr"] = timings.get("write_exr", 0.0) + t2 - t1
        timings["read_exr"] = timings.get("read_exr", 0.0) + time.perf_counter() - t2
    finally:
        cycles.pixel_filter_type, cycles.filter_width = filter_type, filter_width
        if os.path.exists(path):
            os.remove(path)
    return channels


def _convert(
    channels: dict[str, np.ndarray], layer: str, objects: dict[int, str], camera_matrix: np.ndarray, clay: bool
) -> RawPasses:
    alpha = _channel(channels, layer, "combined", 3)
    hit = alpha > 0.5
    index = np.rint(_channel(channels, layer, "index", 0)).astype(np.int32)
    object_id = np.where(hit & (index >= 1), index - 1, -1).astype(np.int32)
    depth = _channel(channels, layer, "depth", 0).astype(np.float32)
    depth = np.where(hit, depth, np.float32(np.inf)).astype(np.float32)
    world = np.stack([_channel(channels, layer, "normal", i) for i in range(3)], axis=-1)
    normal = normals_world_to_camera(world, camera_matrix[:3, :3])
    normal[~hit] = 0.0
    grey = None
    if clay:
        grey = np.where(hit, np.clip(_channel(channels, layer, "combined", 0), 0.0, 1.0), 0.0).astype(np.float32)
    seen = {int(i) for i in np.unique(object_id) if i >= 0}
    return RawPasses(
        depth=depth,
        normal=normal.astype(np.float32),
        object_id=object_id,
        objects={i: n for i, n in objects.items() if i in seen},
        camera_matrix_world=camera_matrix,
        clay=grey,
    )


def _channel(channels: dict[str, np.ndarray], layer: str, kind: str, component: int) -> np.ndarray:
    for candidate in _CHANNELS[kind][component]:
        array = channels.get(f"{layer}.{candidate}")
        if array is not None:
            return array
    raise PassError(
        f"the rendered EXR has no {kind} pass for view layer {layer!r} (channels: {', '.join(sorted(channels))})"
    )


def _temp_exr_path() -> str:
    folder = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    handle, path = tempfile.mkstemp(prefix="scenecast-passes-", suffix=".exr", dir=folder)
    os.close(handle)
    return path


