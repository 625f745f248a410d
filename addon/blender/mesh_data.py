"""Evaluated meshes as plain arrays for the projection core, and UVs for meshes that have none.

Everything here reads the *evaluated* object (``obj.evaluated_get(depsgraph).to_mesh()``), so
modifiers, shape keys and the object's transform are what the core sees — the same surface Blender
renders. Positions and normals are in world space (scene units); UVs are the evaluated mesh's UV
layer of the same name as the original mesh's active one, so a modifier that moves UVs is respected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import bpy
import numpy as np

from ..core.errors import ScenecastError

#: Object types Blender can turn into a mesh; all of them occlude in the depth map.
SURFACE_TYPES = frozenset({"MESH", "CURVE", "SURFACE", "META", "FONT"})
#: Smart UV Project's settings for meshes without UVs: Blender's default angle (66°), a small margin.
SMART_UV_ANGLE_RAD = 1.15192
SMART_UV_MARGIN = 0.02


class MeshDataError(ScenecastError, ValueError):
    """The mesh cannot be textured as it is; the message says what to change."""


@dataclass
class MeshTriangles:
    """One object's evaluated triangles. ``positions`` (T, 3, 3) world space; ``normals`` (T, 3, 3)
    unit world-space corner normals (smooth/flat/custom as Blender shades them); ``uv`` (T, 3, 2) the
    corners' UVs (v = 0 at the bottom of the texture); ``uv_layer``: the UV map's name."""

    positions: np.ndarray
    normals: np.ndarray
    uv: np.ndarray
    uv_layer: str


def uv_layer_name(obj: bpy.types.Object) -> str | None:
    """The UV map texturing uses: the original mesh's active UV map (None when it has none)."""
    layers = obj.data.uv_layers  # type: ignore[union-attr]
    active = layers.active
    return active.name if active is not None else None


def _world_transform(matrix: object) -> tuple[np.ndarray, np.ndarray]:
    m = np.array(matrix, dtype=np.float64)
    linear = m[:3, :3]
    try:
        normal_matrix = np.linalg.inv(linear).T
    except np.linalg.LinAlgError:  # zero scale on some axis: the object is flat; keep the direction
        normal_matrix = linear
    return m, normal_matrix


def _mesh_arrays(mesh: bpy.types.Mesh, matrix: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions (T,3,3) world, corner normals (T,3,3) world, loop indices (T,3)) of a mesh."""
    mesh.calc_loop_triangles()
    t = len(mesh.loop_triangles)
    verts = np.empty(t * 3, dtype=np.int64)
    loops = np.empty(t * 3, dtype=np.int64)
    mesh.loop_triangles.foreach_get("vertices", verts)
    mesh.loop_triangles.foreach_get("loops", loops)
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    normals = np.empty(len(mesh.loops) * 3, dtype=np.float32)
    mesh.corner_normals.foreach_get("vector", normals)
    m, normal_matrix = _world_transform(matrix)
    positions = co.reshape(-1, 3).astype(np.float64)[verts] @ m[:3, :3].T + m[:3, 3]
    n = normals.reshape(-1, 3).astype(np.float64)[loops] @ normal_matrix.T
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return positions.reshape(t, 3, 3), n.reshape(t, 3, 3), loops.reshape(t, 3)


def evaluated_triangles(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, uv_layer: str) -> MeshTriangles:
    """``obj`` after modifiers, triangulated, in world space, with the corners' UVs from ``uv_layer``.

    Raises ``MeshDataError`` when the evaluated mesh has lost that UV map (e.g. a Geometry Nodes
    modifier that does not pass it on) or has no faces.
    """
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        layer = mesh.uv_layers.get(uv_layer)
        if layer is None:
            raise MeshDataError(
                f"{obj.name!r}: after its modifiers the mesh has no UV map {uv_layer!r}; make the last modifier "
                "keep UVs (e.g. store it in Geometry Nodes) or apply the modifiers first"
            )
        positions, normals, loops = _mesh_arrays(mesh, evaluated.matrix_world)
        if len(positions) == 0:
            raise MeshDataError(f"{obj.name!r} has no faces after its modifiers: leave it out, or fix its modifiers")
        uv = np.empty(len(mesh.loops) * 2, dtype=np.float32)
        layer.uv.foreach_get("vector", uv)
        corner_uv = uv.reshape(-1, 2)[loops]
    finally:
        evaluated.to_mesh_clear()
    return MeshTriangles(positions=positions, normals=normals.astype(np.float32), uv=corner_uv, uv_layer=uv_layer)


@dataclass
class SceneGeometry:
    """Every visible surface of the scene as world-space triangles, for depth maps.

    ``triangles`` (T, 3, 3); ``ranges``: object name → (start, end) rows of ``triangles`` for
    objects that are not instances (instanced copies occlude but are not texture targets).
    """

    triangles: np.ndarray
    ranges: dict[str, tuple[int, int]]


def scene_geometry(depsgraph: bpy.types.Depsgraph, include: Iterable[bpy.types.Object] = ()) -> SceneGeometry:
    """All visible mesh-like objects of the depsgraph (instances included), evaluated, world space.

    Objects hidden from the render are left out (they do not occlude a render either). ``include``:
    objects to add even when hidden (the texture targets themselves must occlude their own back).
    """
    parts: list[np.ndarray] = []
    ranges: dict[str, tuple[int, int]] = {}
    count = 0
    seen: set[str] = set()

    def add(evaluated: bpy.types.Object, matrix: object, name: str | None) -> None:
        nonlocal count
        mesh = evaluated.to_mesh()
        try:
            positions = _mesh_arrays(mesh, matrix)[0] if mesh is not None else np.zeros((0, 3, 3))
        finally:
            evaluated.to_mesh_clear()
        if name is not None:
            ranges[name] = (count, count + len(positions))
        parts.append(positions)
        count += len(positions)

    for instance in depsgraph.object_instances:
        obj = instance.object
        if obj is None or obj.type not in SURFACE_TYPES or obj.original.hide_render:
            continue
        name = None if instance.is_instance else obj.original.name
        if name is not None:
            seen.add(name)
        add(obj, instance.matrix_world.copy(), name)
    for obj in include:
        if obj.name not in seen:
            evaluated = obj.evaluated_get(depsgraph)
            add(evaluated, evaluated.matrix_world.copy(), obj.name)
    triangles = np.concatenate(parts) if parts else np.zeros((0, 3, 3))
    return SceneGeometry(triangles=triangles, ranges=ranges)


def add_smart_uvs(objects: Sequence[bpy.types.Object], view_layer: bpy.types.ViewLayer) -> list[str]:
    """Give each mesh object without a UV map one by Smart UV Project; returns the names of those objects.

    Smart UV Project is an edit-mode operator, so this is the one place bpy.ops is used: each object
    is made active in ``view_layer`` under a context override, unwrapped, and the previous active
    object, selection and mode are put back. Objects sharing one mesh are unwrapped once.
    """
    todo = [o for o in objects if uv_layer_name(o) is None]
    if not todo:
        return []
    view_layer.update()  # objects linked since the last update are not in view_layer.objects yet
    previous_active = view_layer.objects.active
    previous_selected = [o for o in view_layer.objects if o.select_get(view_layer=view_layer)]
    done_meshes: set[str] = set()
    try:
        for obj in todo:
            if obj.data.name in done_meshes:  # type: ignore[union-attr]
                continue
            for other in previous_selected:
                other.select_set(False, view_layer=view_layer)
            view_layer.objects.active = obj
            obj.select_set(True, view_layer=view_layer)
            with bpy.context.temp_override(
                active_object=obj, object=obj, selected_objects=[obj], selected_editable_objects=[obj],
                view_layer=view_layer,
            ):
                bpy.ops.object.mode_set(mode="EDIT")
                try:
                    bpy.ops.mesh.select_all(action="SELECT")
                    bpy.ops.uv.smart_project(angle_limit=SMART_UV_ANGLE_RAD, island_margin=SMART_UV_MARGIN)
                finally:
                    bpy.ops.object.mode_set(mode="OBJECT")
            obj.select_set(False, view_layer=view_layer)
            done_meshes.add(obj.data.name)  # type: ignore[union-attr]
    finally:
        for other in previous_selected:
            other.select_set(True, view_layer=view_layer)
        view_layer.objects.active = previous_active
    return [o.name for o in todo]


def remove_uv_layers(objects: Iterable[bpy.types.Object]) -> None:
    """Undo ``add_smart_uvs`` for these objects (used when projection fails afterwards)."""
    for obj in objects:
        layers = obj.data.uv_layers  # type: ignore[union-attr]
        for layer in list(layers):
            layers.remove(layer)
