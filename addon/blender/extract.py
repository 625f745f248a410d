"""From a scene and a camera to ControlNet-ready images: the one call ``api.extract_passes`` wraps.

``extract_passes`` renders the raw passes (``passes.render_passes``) and turns them into control
images with the conventions of ``core.conventions`` / ``core.edges`` / ``core.segmentation``; the
maths lives there, this module only gathers scene data (depth range from bounds, object classes).

One depth range per job: a caller rendering several views or frames computes it once with
``scene_depth_range(scene, cameras, resolution, frames)`` and passes it to every call, so a
surface gets the same grey in all of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..core import edges as core_edges
from ..core.bounds import visible_box_depths
from ..core import segmentation as core_segmentation
from ..core.conventions import (
    DEFAULT_DEPTH_MAPPING,
    DEPTH_MAPPINGS,
    DepthRange,
    depth_range_from_bounds,
    depth_to_control,
    normals_to_control,
    widen_to_cover,
)
from . import compat
from .passes import PassError, RawPasses, render_passes
from .settings import CLASS_PROPERTY, object_classes  # noqa: F401  (re-exported: the one source of classes)

#: Edge sources ``extract_passes`` accepts.
EDGE_MODES: tuple[str, ...] = ("geometric", "canny", "freestyle")
#: Canny thresholds for the clay render, on 0..255 grey (noise-free clay: neighbouring faces may differ by only ~15 levels).
CANNY_LOW, CANNY_HIGH = 10.0, 30.0
#: Object types whose bounding boxes count for the default depth range.
_BOUNDED_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"}


@dataclass
class Passes:
    """One view's passes. Row 0 is the top of the image in every array.

    ``control``: "depth", "normal", "edges", "segmentation" → (H, W, 3) uint8 ControlNet images.
    ``raw``: "depth" (H, W) float32 planar scene units, inf background; "normal" (H, W, 3) float32
    camera space; "object_id" (H, W) int32, −1 background; "vector" (H, W, 4) float32 Blender's
    Vector pass in pixels, only when asked for (``core.flow``). ``objects``: id → object name for the ids
    in the image; ``classes``: id → segmentation class used. ``clay`` (H, W) float32 0..1 and
    ``color`` (H, W, 3) uint8 sRGB when asked for.
    """

    control: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    depth_range: DepthRange
    objects: dict[int, str]
    classes: dict[int, str]
    camera: str
    resolution: tuple[int, int]
    frame: int
    clay: np.ndarray | None = None
    color: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


def extract_passes(
    scene: bpy.types.Scene,
    camera: bpy.types.Object | None = None,
    resolution: tuple[int, int] | None = None,
    *,
    depth_range: DepthRange | None = None,
    frame: int | None = None,
    edges: str = "geometric",
    classes: Mapping[str, str] | None = None,
    clay: bool = False,
    color: bool = False,
    color_samples: int = 16,
    depth_mapping: str = DEFAULT_DEPTH_MAPPING,
    view_layer: bpy.types.ViewLayer | None = None,
    vector: bool = False,
) -> Passes:
    """Render ``scene`` from ``camera`` (default: the scene camera) and build the control images.

    ``resolution``: (width, height); default the scene's resolution × percentage. ``depth_range``:
    the job's near/far; default ``scene_depth_range`` for this camera and frame. ``frame``: default
    the current frame. ``edges``: "geometric" (silhouettes and creases from the passes, the default),
    "canny" (Canny on the clay render) or "freestyle" (Blender's Freestyle lines, slower: its
    stroke pipeline runs in Python). ``classes``: object name → segmentation class, overriding each object's
    ``scenecast_class`` property (see ``object_classes``). ``clay``/``color``: also return
    the clay render / a colour render of ``color_samples`` samples (img2img sources). ``vector``:
    also Blender's Vector pass in ``raw["vector"]``, (H, W, 4) float32 pixels, row 0 top, Blender's
    channels (``core.flow.flow_to_previous`` / ``flow_to_next`` turn it into flows; docs/passes.md).
    The scene is left exactly as it was, also on failure.
    """
    if edges not in EDGE_MODES:
        raise ValueError(f"unknown edges mode {edges!r}; use one of {', '.join(EDGE_MODES)}")
    if depth_mapping not in DEPTH_MAPPINGS:
        raise ValueError(f"unknown depth mapping {depth_mapping!r}; use one of {', '.join(DEPTH_MAPPINGS)}")
    by_name = object_classes(scene, classes)
    _check_classes(by_name)  # before rendering: a typo should not cost a render
    camera = camera or scene.camera
    if camera is None:
        raise PassError("the scene has no camera: add one and make it active, or pass camera=")
    size = resolution or scene_resolution(scene)
    t0 = time.perf_counter()
    computed = depth_range is None
    if depth_range is None:
        frames = None if frame is None else [frame]
        depth_range = scene_depth_range(scene, [camera], size, frames, view_layer=view_layer)
    t1 = time.perf_counter()
    raw = render_passes(
        scene, camera, size, frame=frame, view_layer=view_layer, clay=clay or edges == "canny", color=color,
        color_samples=color_samples, freestyle=edges == "freestyle", vector=vector,
    )
    if computed:  # the render may show what the viewport bounds missed (objects hidden only in the viewport)
        depth_range = widen_to_cover(depth_range, raw.depth)
    t2 = time.perf_counter()
    ids = {i: by_name[name] for i, name in raw.objects.items() if name in by_name}
    control = {
        "depth": depth_to_control(raw.depth, depth_range, depth_mapping),
        "normal": normals_to_control(raw.normal, raw.mask),
        "edges": core_edges.edges_to_control(_edges(raw, edges)),
        "segmentation": core_segmentation.segmentation_to_control(raw.object_id, ids),
    }
    timings = {"depth_range": t1 - t0, **raw.timings, "control": time.perf_counter() - t2}
    raw_arrays = {"depth": raw.depth, "normal": raw.normal, "object_id": raw.object_id}
    if raw.vector is not None:
        raw_arrays["vector"] = raw.vector
    return Passes(
        control=control,
        raw=raw_arrays,
        depth_range=depth_range,
        objects=dict(raw.objects),
        classes=ids,
        camera=camera.name,
        resolution=(int(size[0]), int(size[1])),
        frame=raw.frame,
        clay=raw.clay if clay or edges == "canny" else None,
        color=raw.color,
        timings=timings,
    )


def scene_resolution(scene: bpy.types.Scene) -> tuple[int, int]:
    """The scene's output size in pixels: resolution × percentage, as a render would produce."""
    r = scene.render
    scale = r.resolution_percentage / 100.0
    return max(1, int(r.resolution_x * scale)), max(1, int(r.resolution_y * scale))


def scene_depth_range(
    scene: bpy.types.Scene,
    cameras: Iterable[bpy.types.Object],
    resolution: tuple[int, int],
    frames: Iterable[int] | None = None,
    *,
    view_layer: bpy.types.ViewLayer | None = None,
) -> DepthRange:
    """The depth range of a job: bounds of the rendered objects each camera sees, over all frames.

    Uses the bounding boxes of every renderable object whose box overlaps a camera's view frustum
    (instances included), at each frame (default: the current one); ``near`` is floored at the
    cameras' clip start. The current frame is restored afterwards.
    """
    cameras = list(cameras)
    original = (scene.frame_current, scene.frame_subframe)
    depths: list[np.ndarray] = []
    clip_start = min(c.data.clip_start for c in cameras)
    try:
        for frame in list(frames) if frames is not None else [scene.frame_current]:
            if frame != scene.frame_current:
                scene.frame_set(frame)
            corners = _visible_corners(scene, view_layer)
            for camera in cameras:
                depths.append(_corner_depths_in_view(scene, camera, corners, resolution))
    finally:
        if (scene.frame_current, scene.frame_subframe) != original:
            scene.frame_set(original[0], subframe=original[1])
    all_depths = np.concatenate(depths) if depths else np.zeros(0)
    try:
        return depth_range_from_bounds(all_depths, min_near=clip_start)
    except ValueError:
        raise PassError(
            "nothing renderable is in front of the camera: point the camera at the scene or pass depth_range="
        ) from None


def _depsgraph(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer | None) -> bpy.types.Depsgraph:
    """The evaluated depsgraph of ``scene`` (the context's when it is the context scene)."""
    if bpy.context.scene == scene and (view_layer is None or view_layer == getattr(bpy.context, "view_layer", None)):
        return bpy.context.evaluated_depsgraph_get()
    layer = view_layer or scene.view_layers[0]
    if layer.depsgraph is None:
        layer.update()  # a scene never shown in a window (bpy.data.scenes.new in a script) has none yet
    if layer.depsgraph is None:
        raise PassError(f"Blender could not evaluate view layer {layer.name!r} of scene {scene.name!r}:"
                        " make the scene current (context.window.scene = scene) and extract again")
    return layer.depsgraph


def _visible_corners(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer | None) -> np.ndarray:
    """(N, 8, 4) homogeneous world-space bounding-box corners of every rendered object instance."""
    depsgraph = _depsgraph(scene, view_layer)
    boxes = []
    for instance in depsgraph.object_instances:
        obj = instance.object
        if obj.type not in _BOUNDED_TYPES or obj.original.hide_render:
            continue  # the viewport depsgraph also holds objects hidden from renders
        local = np.array([tuple(c) + (1.0,) for c in obj.bound_box], dtype=np.float64)
        boxes.append(local @ np.array(instance.matrix_world, dtype=np.float64).T)
    return np.array(boxes, dtype=np.float64).reshape(-1, 8, 4)


def _corner_depths_in_view(
    scene: bpy.types.Scene, camera: bpy.types.Object, corners: np.ndarray, resolution: tuple[int, int]
) -> np.ndarray:
    """Planar depths (−z in camera space) of the boxes' surfaces inside the view frustum."""
    if corners.size == 0:
        return np.zeros(0)
    depsgraph = _depsgraph(scene, None)
    world_to_cam = np.linalg.inv(np.array(compat.world_matrix(camera, depsgraph), dtype=np.float64))
    projection = np.array(
        camera.calc_matrix_camera(depsgraph, x=int(resolution[0]), y=int(resolution[1])), dtype=np.float64
    )
    # Clip each box to the view: a large ground plane's far corners say nothing about how near the
    # floor at the bottom of the frame is.
    return visible_box_depths(corners @ world_to_cam.T, projection)


def _edges(raw: RawPasses, mode: str) -> np.ndarray:
    if mode == "canny":
        assert raw.clay is not None
        return core_edges.canny(raw.clay * 255.0, CANNY_LOW, CANNY_HIGH)
    if mode == "freestyle":
        assert raw.lines is not None
        return raw.lines >= 0.5
    return core_edges.geometric_edges(raw.depth, raw.normal, raw.object_id)


def _check_classes(by_name: Mapping[str, str]) -> None:
    for name, cls in by_name.items():
        try:
            core_segmentation.ade20k_index(cls)
        except ValueError as exc:
            raise ValueError(f"object {name!r}: segmentation class {cls!r} is unknown ({exc})") from None
