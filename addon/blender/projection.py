"""Project images from cameras onto objects' UV textures: what ``api.project`` and multi-view texturing run.

``Projector`` holds, per object, the UV rasterisation (``core.uv_raster.TexelSamples``) and the
world-space point and normal of every covered texel, computed once; each ``project`` call then costs one
depth map and one gather per view. Its colour and weight arrays (row 0 bottom, sRGB 0..1) stay in memory
until ``write`` stores them in the objects' images and materials (``texture_target``), so several views
cost one PNG/EXR pack at the end. The maths lives in ``core.projection`` / ``core.texture_blend``.

Occlusion: the depth map of each view is rasterised (``core.projection.rasterize_view``) from the
evaluated meshes of every visible surface object in the scene plus the targets, or taken from a render
(``depth=``: planar depth in scene units, row 0 top, inf where empty — e.g. ``Passes.raw["depth"]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np

from ..core.conventions import linear_to_srgb
from ..core.errors import ScenecastError
from ..core.projection import CameraView, ViewRaster, rasterize_view
from ..core.texture_blend import pad_islands, render_texture_into_view
from ..core.uv_raster import TexelSamples, interpolate, rasterize_uv
from ..core.view_sampler import TexelSet, ViewSampler, project_into
from . import texture_target
from .mesh_data import MeshTriangles, SceneGeometry, add_smart_uvs, evaluated_triangles, remove_uv_layers, scene_geometry, uv_layer_name


class ProjectionError(ScenecastError, ValueError):
    """Projection cannot run as asked; nothing was changed. The message says what to do."""


#: Texture sizes accepted (texels per side).
MIN_SIZE, MAX_SIZE = 8, 16384
#: Keyword arguments passed on to ``core.texture_blend.view_weights``.
WEIGHT_PARAMS = ("power", "cutoff_deg", "feather_px", "depth_tolerance", "feather_floor")


def image_pixels_srgb(image: Any) -> np.ndarray:
    """(H, W, 3|4) float32 sRGB 0..1, row 0 top, from a Blender image or an array; raises ``ProjectionError``.

    Arrays: uint8, or float in 0..1, holding sRGB values (row 0 top). Blender images: float images hold
    linear pixels and are encoded to sRGB (unless "Non-Color"); byte images hold their encoded values.
    """
    if isinstance(image, bpy.types.Image):
        if image.type in {"RENDER_RESULT", "COMPOSITING"}:
            raise ProjectionError(f"{image.name!r} is a render result, whose pixels Python cannot read: "
                                  "save it (Image › Save As) and project the saved image")
        w, h = image.size
        if w == 0 or h == 0:
            raise ProjectionError(f"image {image.name!r} has no pixels (missing file?): reload it or fix its file path")
        px = np.empty(w * h * image.channels, dtype=np.float32)
        image.pixels.foreach_get(px)  # type: ignore[attr-defined]
        px = px.reshape(h, w, image.channels)[::-1]  # Blender's row 0 is the bottom
        if px.shape[2] < 3:
            px = np.repeat(px[..., :1], 3, axis=2)
        space = image.colorspace_settings.name
        linear = image.is_float and space != "Non-Color" or space.lower().startswith("linear")
        rgb = linear_to_srgb(px[..., :3]) if linear else np.clip(px[..., :3], 0.0, 1.0)
        if px.shape[2] == 4 and image.alpha_mode != "NONE":
            return np.ascontiguousarray(np.concatenate([rgb, np.clip(px[..., 3:4], 0.0, 1.0)], axis=2))
        return np.ascontiguousarray(rgb)
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ProjectionError(f"image array has shape {a.shape}: pass an H×W×3 (RGB) or H×W×4 (RGBA) array, row 0 at the top")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise ProjectionError(f"image array has dtype {a.dtype}: pass uint8 (0..255) or float (0..1) sRGB values")
    a = a.astype(np.float32)
    if not np.isfinite(a).all() or a.min() < -1e-3 or a.max() > 1.0 + 1e-3:
        raise ProjectionError("float image values must lie in 0..1 (sRGB): divide 0..255 data by 255, "
                              "or encode linear data with linear_to_srgb")
    return np.clip(a, 0.0, 1.0)


def camera_view(camera: bpy.types.Object, depsgraph: bpy.types.Depsgraph, resolution: tuple[int, int]) -> CameraView:
    """The ``core`` view of ``camera`` rendering ``resolution`` (W, H) pixels (its sensor fit decides the frame)."""
    w, h = int(resolution[0]), int(resolution[1])
    evaluated = camera.evaluated_get(depsgraph)
    projection = evaluated.calc_matrix_camera(depsgraph, x=w, y=h)
    # Renders ignore the camera object's scale: so does the view.
    world_to_camera = evaluated.matrix_world.normalized().inverted()
    return CameraView(np.array(world_to_camera), np.array(projection), (w, h))


@dataclass
class ProjectionTarget:
    """One object's cached texturing state: triangles, texel samples, texel points/normals (world) and the
    texture so far — ``color`` (H, W, 3) sRGB 0..1 and ``weight`` (H, W), row 0 at the bottom."""

    name: str
    triangles: MeshTriangles
    samples: TexelSamples
    points: np.ndarray
    normals: np.ndarray
    color: np.ndarray
    weight: np.ndarray

    @property
    def object(self) -> bpy.types.Object:
        return bpy.data.objects[self.name]

    def coverage(self) -> float:
        """Fraction of the texels inside UV islands that some view has seen."""
        return float(np.count_nonzero(self.weight.reshape(-1)[self.samples.index] > 0)) / max(len(self.samples.index), 1)


def make_target(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, size: tuple[int, int],
                uv_layer: str) -> ProjectionTarget:
    tris = evaluated_triangles(obj, depsgraph, uv_layer)
    samples = rasterize_uv(tris.uv, size)
    points = interpolate(samples, tris.positions)
    normals = interpolate(samples, tris.normals)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    start = texture_target.existing_texture(obj, size) or texture_target.blank_texture(size)
    return ProjectionTarget(obj.name, tris, samples, points, normals.astype(np.float32), *start)


def check_objects(objects: Iterable[Any], scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """The distinct mesh objects of ``objects``, or ``ProjectionError`` naming what to change."""
    result: list[bpy.types.Object] = []
    for obj in objects:
        if not isinstance(obj, bpy.types.Object):
            raise ProjectionError(f"{obj!r} is not an object: pass Blender mesh objects")
        if obj.type != "MESH":
            raise ProjectionError(f"{obj.name!r} is a {obj.type.lower()}: only mesh objects hold UV textures "
                                  "(Object › Convert › Mesh, or leave it out)")
        if scene.objects.get(obj.name) is None:
            raise ProjectionError(f"{obj.name!r} is not in scene {scene.name!r}: link it to the scene")
        if obj.mode != "OBJECT":
            raise ProjectionError(f"{obj.name!r} is in {obj.mode.replace('_', ' ').title()} mode: switch to Object Mode")
        if not obj.data.polygons:  # type: ignore[union-attr]
            raise ProjectionError(f"{obj.name!r} has no faces: nothing to texture")
        if obj not in result:
            result.append(obj)
    if not result:
        raise ProjectionError("no mesh objects to project onto: select mesh objects or pass objects=[...]")
    return result


@dataclass
class Projector:
    """Texture state for a set of objects, built once (UVs added where missing) and fed any number of views.

        projector = Projector(objects)                       # validates; adds UVs where missing (notes)
        view = projector.view(camera, (512, 512))
        projector.project(view, image)                        # occlusion from the scene's meshes
        rgb, weight, mask = projector.render_into_view(view)  # the texture so far, seen from a view
        images = projector.write(material="new")              # {object: texture image}
    """

    objects: Sequence[bpy.types.Object]  # checked and read at construction, then dropped (targets hold names)
    size: int | tuple[int, int] = (1024, 1024)
    notes: list[str] = field(default_factory=list)
    targets: list[ProjectionTarget] = field(default_factory=list)
    uvs_added: list[str] = field(default_factory=list)
    _geometry: SceneGeometry | None = field(default=None, init=False)
    _raster: tuple[CameraView, ViewRaster] | None = field(default=None, init=False)
    _texels: dict[str, TexelSet] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        scene, view_layer = bpy.context.scene, bpy.context.view_layer
        if scene is None or view_layer is None:
            raise ProjectionError("no active scene: run this from a window showing a scene")
        self.objects = check_objects(self.objects, scene)
        w, h = (self.size, self.size) if isinstance(self.size, int) else (int(self.size[0]), int(self.size[1]))
        if not (MIN_SIZE <= w <= MAX_SIZE and MIN_SIZE <= h <= MAX_SIZE):
            raise ProjectionError(f"texture size {w}×{h}: use {MIN_SIZE}..{MAX_SIZE} texels per side (default 1024)")
        self.size = (w, h)
        self.uvs_added = add_smart_uvs(self.objects, view_layer)
        try:
            if self.uvs_added:
                self.notes.append("no UV map, unwrapped with Smart UV Project: " + ", ".join(self.uvs_added))
            depsgraph = bpy.context.evaluated_depsgraph_get()
            self.targets = [make_target(o, depsgraph, self.size, uv_layer_name(o) or "UVMap") for o in self.objects]
        except BaseException:
            remove_uv_layers(o for o in self.objects if o.name in self.uvs_added)
            raise
        self.objects = ()  # from here on by name (``target.object``): see the note below

    # A projector lives across the jobs of a multi-view run, while undo or a file load may free IDs:
    # after construction it reaches objects through ``target.object`` (by name) and asks for the
    # depsgraph anew, never through references kept from ``__post_init__``.
    def view(self, camera: bpy.types.Object, resolution: tuple[int, int]) -> CameraView:
        return camera_view(camera, bpy.context.evaluated_depsgraph_get(), resolution)

    @property
    def geometry(self) -> SceneGeometry:
        """Every visible surface (targets included), evaluated once and reused for each view."""
        if self._geometry is None:
            self._geometry = scene_geometry(bpy.context.evaluated_depsgraph_get(),
                                            include=[t.object for t in self.targets])
        return self._geometry

    def raster(self, view: CameraView) -> ViewRaster:
        """The scene rasterised into ``view``; the last one is kept, so depth map and render-into-view share it."""
        if self._raster is None or self._raster[0] is not view:
            self._raster = (view, rasterize_view(view, self.geometry.triangles))
        return self._raster[1]

    def depth_map(self, view: CameraView) -> np.ndarray:
        """(H, W) float32 planar depth of the scene from ``view``, row 0 top, inf where empty."""
        return self.raster(view).depth

    def project(self, view: CameraView, image: np.ndarray, depth: np.ndarray | None = None,
                **weight_params: float) -> dict[str, float]:
        """Blend ``image`` ((H, W, 3|4) sRGB 0..1 row 0 top, the size of ``view``) into every target's
        texture; returns object name → mean weight this view gave its island texels (0: not seen)."""
        depth_map = self.depth_map(view) if depth is None else np.asarray(depth, dtype=np.float32)
        # feather map and image table once per view, shared by every target; texel layout once per target
        sampler = ViewSampler(view, image, depth_map, **weight_params)
        seen = {}
        for t in self.targets:
            texels = self._texels.get(t.name)
            if texels is None:
                texels = self._texels[t.name] = TexelSet(t.points, t.normals, t.samples.index)
            total = project_into(sampler, texels, t.color, t.weight)
            seen[t.name] = total / len(texels) if len(texels) else 0.0
        return seen

    def render_into_view(self, view: CameraView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See ``render_textures_into_view``."""
        return render_textures_into_view(self.targets, view, self.geometry, self.raster(view))

    def write(self, material: str = "new", pad: int = 16) -> dict[bpy.types.Object, bpy.types.Image]:
        """Store every target's texture (padded ``pad`` texels past its seen texels; weights stay 0 there)
        in its images and show it through ``material`` ("new" | "node"); returns object → texture image."""
        texture_target.check_material_mode([t.object for t in self.targets], material)
        images = {}
        for t in self.targets:
            obj = t.object
            color = pad_islands(t.color, t.weight > 0, iterations=pad) if pad > 0 else t.color
            image = texture_target.write_texture(obj, color, t.weight)
            texture_target.assign_texture(obj, image, t.triangles.uv_layer, material)
            images[obj] = image
        return images


def render_textures_into_view(targets: Sequence[ProjectionTarget], view: CameraView, geometry: SceneGeometry,
                              raster: ViewRaster | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``view`` sees of the targets' textures so far, occluded by the whole scene: rgb (H, W, 3) sRGB
    0..1, weight (H, W) and mask (H, W) bool (a target's surface is the nearest there); row 0 top.
    ``raster``: ``geometry`` already rasterised into ``view``."""
    raster = raster if raster is not None else rasterize_view(view, geometry.triangles)
    w, h = view.resolution
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    weight = np.zeros((h, w), dtype=np.float32)
    mask = np.zeros((h, w), dtype=bool)
    for t in targets:
        start, end = geometry.ranges[t.name]
        mine = (raster.tri >= start) & (raster.tri < end)
        if not mine.any():
            continue
        own = ViewRaster(raster.depth, np.where(mine, raster.tri - start, -1).astype(np.int32), raster.bary)
        t_rgb, t_weight = render_texture_into_view(own, t.triangles.uv, t.color, t.weight)
        rgb[mine], weight[mine] = t_rgb[mine], t_weight[mine]
        mask |= mine
    return rgb, weight, mask


class ProjectionResult(dict):  # type: ignore[type-arg]
    """``{object: texture image}``, plus ``notes`` (what the user should know, e.g. UVs added),
    ``coverage`` (object name → fraction of its UV-island texels seen so far) and ``uvs_added``."""

    notes: list[str]
    coverage: dict[str, float]
    uvs_added: list[str]


def project(objects: Iterable[bpy.types.Object], camera: bpy.types.Object | None, image: Any, *,
            size: int | tuple[int, int] = 1024, material: str = "new", depth: np.ndarray | None = None,
            pad: int = 16, **weight_params: float) -> ProjectionResult:
    """Project ``image`` from ``camera`` onto ``objects``' UV textures, blending with earlier projections.

    See ``api.project``. Everything is checked before anything changes; on a later failure the UV maps
    this call added are removed again and no image or material has been touched.
    """
    scene = bpy.context.scene
    if scene is None:
        raise ProjectionError("no active scene: run this from a window showing a scene")
    camera = camera if camera is not None else scene.camera
    if camera is None:
        raise ProjectionError("no camera: pass camera=<camera object> or set the scene's active camera")
    if not isinstance(camera, bpy.types.Object) or camera.type != "CAMERA":
        name = getattr(camera, "name", repr(camera))
        raise ProjectionError(f"{name!r} is not a camera: pass a camera object (Add › Camera)")
    pixels = image_pixels_srgb(image)
    h, w = pixels.shape[:2]
    if depth is not None:
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != (h, w):
            raise ProjectionError(f"depth is {depth.shape}, the image {h}×{w}: pass the depth render of the same view and size")
    unknown = set(weight_params) - set(WEIGHT_PARAMS)
    if unknown:
        raise ProjectionError(f"unknown argument(s) {', '.join(sorted(unknown))}: use {', '.join(WEIGHT_PARAMS)}")
    objects = check_objects(objects, scene)
    texture_target.check_material_mode(objects, material)
    sizes = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    projector = Projector(objects, sizes)
    view = projector.view(camera, (w, h))
    seen = projector.project(view, pixels, depth, **weight_params)
    notes = list(projector.notes)
    notes += [f"{name!r} is not visible from {camera.name!r}: nothing projected onto it" for name, s in seen.items() if s <= 0]
    result = ProjectionResult(projector.write(material, pad))
    result.notes = notes
    result.coverage = {t.name: t.coverage() for t in projector.targets}
    result.uvs_added = projector.uvs_added
    for note in notes:
        print(f"Scenecast: {note}")
    return result
