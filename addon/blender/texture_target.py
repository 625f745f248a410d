"""Where projected colour lives: each object's texture and weight images, its material, and the way back.

Per object (names follow the object; ``texture_names``):

- ``"<object> Scenecast"``: the texture, an 8-bit RGB image in the "sRGB" colour space holding sRGB
  values (what a user saves as PNG), packed into the .blend. Row 0 of its pixels is v = 0 (bottom).
- ``"<object> Scenecast.weight"``: float, "Non-Color", packed (as OpenEXR): how much projected
  evidence each texel holds (sum of view weights, in R; 0 = never seen). Kept so a second projection
  blends with the first instead of overwriting it.
- The object points at its texture (custom property ``scenecast_texture``) and the texture at its
  weight image (``scenecast_weight``). These ID properties hold users, so both images survive save
  and reload — also after ``restore_materials`` — and the next projection goes on accumulating.

Materials: ``"new"`` puts a new material ``"<object> Scenecast"`` (UV Map → Image Texture →
Principled Base Color) in every material slot of the object (slots are switched to object links, so a
mesh shared with other objects keeps its own materials); ``"node"`` adds the Image Texture and UV Map
nodes to the object's own material(s) and links them into the Principled BSDF's Base Color. Either
way what was there is recorded on the object (``scenecast_restore``) / material
(``scenecast_base_color``) and ``restore_materials`` puts it back. Only the data API is used.
"""

from __future__ import annotations

from collections.abc import Iterable

import bpy
import numpy as np

from ..core.errors import ScenecastError
from . import compat

MATERIAL_MODES = ("new", "node")
TEXTURE_NODE = "Scenecast Texture"
UV_NODE = "Scenecast UV"
#: Colour of texels no view has seen yet: a neutral mid grey (sRGB 0.5).
UNSEEN_SRGB = 0.5


class TextureTargetError(ScenecastError, ValueError):
    """The object's material cannot take the texture as asked; the message says what to do."""


def texture_names(obj: bpy.types.Object) -> tuple[str, str]:
    """(texture image name, weight image name) for ``obj``."""
    return f"{obj.name} Scenecast", f"{obj.name} Scenecast.weight"


def _read(image: bpy.types.Image) -> np.ndarray:
    w, h = image.size
    px = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(px)  # type: ignore[attr-defined]
    return px.reshape(h, w, 4)


def existing_texture(obj: bpy.types.Object, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The object's texture (H, W, 3) sRGB 0..1 and weights (H, W), row 0 bottom, if it has a pair of ``size``."""
    texture = obj.get("scenecast_texture")
    if not isinstance(texture, bpy.types.Image) or tuple(texture.size) != tuple(size):
        return None
    weight = texture.get("scenecast_weight")
    if not isinstance(weight, bpy.types.Image) or tuple(weight.size) != tuple(size):
        return None
    return _read(texture)[..., :3].copy(), _read(weight)[..., 0].copy()


def blank_texture(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    w, h = size
    return np.full((h, w, 3), UNSEEN_SRGB, dtype=np.float32), np.zeros((h, w), dtype=np.float32)


def _image(name: str, size: tuple[int, int], float_buffer: bool, previous: object) -> bpy.types.Image:
    # ``previous`` is the one the object (or its texture) points at: ours, though packing made it a FILE image.
    if isinstance(previous, bpy.types.Image) and previous.is_float == float_buffer:
        image = previous
        if tuple(image.size) != tuple(size):
            image.scale(*size)
        if image.name != name and name not in bpy.data.images:
            image.name = name
        return image
    return bpy.data.images.new(name, size[0], size[1], alpha=False, float_buffer=float_buffer)


def write_texture(obj: bpy.types.Object, color: np.ndarray, weight: np.ndarray) -> bpy.types.Image:
    """Store ``color`` (H, W, 3) sRGB 0..1 and ``weight`` (H, W), row 0 bottom, in the object's images."""
    h, w = weight.shape
    tex_name, weight_name = texture_names(obj)
    texture = _image(tex_name, (w, h), False, obj.get("scenecast_texture"))
    texture.colorspace_settings.name = "sRGB"
    weights = _image(weight_name, (w, h), True, texture.get("scenecast_weight"))
    weights.colorspace_settings.name = "Non-Color"
    rgba = np.ones((h, w, 4), dtype=np.float32)
    rgba[..., :3] = np.clip(color, 0.0, 1.0)
    texture.pixels.foreach_set(rgba.ravel())  # type: ignore[attr-defined]
    texture.update()
    wrgba = np.zeros((h, w, 4), dtype=np.float32)
    wrgba[..., 0] = weight
    wrgba[..., 3] = 1.0
    weights.pixels.foreach_set(wrgba.ravel())  # type: ignore[attr-defined]
    weights.update()
    texture.pack()  # PNG inside the .blend: the pixels written above are what a reload shows
    weights.pack()  # OpenEXR: full float precision
    texture["scenecast_weight"] = weights
    obj["scenecast_texture"] = texture
    return texture


# --- materials ---------------------------------------------------------------------------------------


def _principled(material: bpy.types.Material) -> bpy.types.Node | None:
    tree = material.node_tree
    if tree is None:
        return None
    output = next((n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial" and n.is_active_output), None)  # type: ignore[attr-defined]
    if output is not None and output.inputs["Surface"].is_linked:
        node = output.inputs["Surface"].links[0].from_node  # type: ignore[index]
        if node.bl_idname == "ShaderNodeBsdfPrincipled":
            return node
    return next((n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"), None)


def check_material_mode(objects: Iterable[bpy.types.Object], mode: str) -> None:
    """Raise ``TextureTargetError`` (touching nothing) when ``mode`` cannot be applied to ``objects``."""
    objects = list(objects)
    if mode not in MATERIAL_MODES:
        raise TextureTargetError(f"unknown material mode {mode!r}: use 'new' (a new material) or 'node' (a node in the object's material)")
    if mode != "node":
        return
    owners: dict[str, str] = {}
    for obj in objects:
        for material in {s.material for s in obj.material_slots if s.material is not None}:
            if material.get("scenecast_base_color") is not None:
                continue  # already ours from an earlier call
            if _principled(material) is None:
                raise TextureTargetError(
                    f"material {material.name!r} of {obj.name!r} has no Principled BSDF to feed: use material='new'"
                )
            if owners.setdefault(material.name, obj.name) != obj.name or _shared_with_others(material, obj):
                raise TextureTargetError(
                    f"material {material.name!r} is shared by several objects and can show one texture only: "
                    "use material='new', or make it single-user (Object › Relations › Make Single User)"
                )


def _shared_with_others(material: bpy.types.Material, obj: bpy.types.Object) -> bool:
    return any(o != obj and any(s.material == material for s in o.material_slots) for o in bpy.data.objects)


def _texture_nodes(material: bpy.types.Material, texture: bpy.types.Image, uv_layer: str) -> bpy.types.Node:
    tree = material.node_tree
    assert tree is not None
    image_node = tree.nodes.get(TEXTURE_NODE) or tree.nodes.new("ShaderNodeTexImage")
    image_node.name = image_node.label = TEXTURE_NODE
    image_node.image = texture  # type: ignore[attr-defined]
    image_node.interpolation = "Linear"  # type: ignore[attr-defined]
    image_node.extension = "EXTEND"  # type: ignore[attr-defined]
    uv_node = tree.nodes.get(UV_NODE) or tree.nodes.new("ShaderNodeUVMap")
    uv_node.name = uv_node.label = UV_NODE
    uv_node.uv_map = uv_layer  # type: ignore[attr-defined]
    tree.links.new(uv_node.outputs["UV"], image_node.inputs["Vector"])
    return image_node


def _new_material(obj: bpy.types.Object, texture: bpy.types.Image, uv_layer: str) -> bpy.types.Material:
    name = texture_names(obj)[0]
    material = bpy.data.materials.get(name)
    if material is None or material.get("scenecast_material_of") != obj.name:
        material = bpy.data.materials.new(name)
        material["scenecast_material_of"] = obj.name
        compat.ensure_material_nodes(material)
    principled = _principled(material)
    assert principled is not None  # a new material starts with Principled → Output
    image_node = _texture_nodes(material, texture, uv_layer)
    image_node.location = (principled.location[0] - 320, principled.location[1])
    material.node_tree.nodes[UV_NODE].location = (principled.location[0] - 520, principled.location[1] - 120)  # type: ignore[union-attr]
    material.node_tree.links.new(image_node.outputs["Color"], principled.inputs["Base Color"])  # type: ignore[union-attr]
    return material


def assign_texture(obj: bpy.types.Object, texture: bpy.types.Image, uv_layer: str, mode: str) -> None:
    """Show ``texture`` (through ``uv_layer``) on ``obj`` as ``mode`` says, recording what it replaces."""
    if mode == "new" or not any(s.material for s in obj.material_slots):
        material = _new_material(obj, texture, uv_layer)
        if obj.get("scenecast_restore") is None:
            saved = {"slots": len(obj.material_slots), "links": [s.link for s in obj.material_slots]}
            saved["object"] = {str(i): s.material for i, s in enumerate(obj.material_slots)
                               if s.link == "OBJECT" and s.material is not None}
            obj["scenecast_restore"] = saved
        if not obj.material_slots:
            obj.data.materials.append(None)  # type: ignore[union-attr]
        for slot in obj.material_slots:
            slot.link = "OBJECT"
            slot.material = material
        return
    for material in {s.material for s in obj.material_slots if s.material is not None}:
        principled = _principled(material)
        if principled is None:
            continue  # checked beforehand: only ours from an earlier call can get here
        base = principled.inputs["Base Color"]
        if material.get("scenecast_base_color") is None:
            link = base.links[0] if base.is_linked else None  # type: ignore[index]
            material["scenecast_base_color"] = {
                "node": principled.name,
                "from_node": link.from_node.name if link else "",
                "from_socket": link.from_socket.identifier if link else "",
            }
        image_node = _texture_nodes(material, texture, uv_layer)
        image_node.location = (principled.location[0] - 320, principled.location[1] + 260)
        material.node_tree.nodes[UV_NODE].location = (principled.location[0] - 520, principled.location[1] + 140)  # type: ignore[union-attr]
        material.node_tree.links.new(image_node.outputs["Color"], base)  # type: ignore[union-attr]


def restore_materials(objects: Iterable[bpy.types.Object]) -> list[str]:
    """Put back what ``assign_texture`` replaced; returns the names of objects that changed.

    The Scenecast texture and weight images stay (the object still points at them), so projecting
    again continues where it left off; the "<object> Scenecast" material stays in bpy.data until
    it has no users at the next save.
    """
    changed = []
    for obj in objects:
        touched = False
        saved = obj.get("scenecast_restore")
        if saved is not None:
            count = int(saved["slots"])
            links = list(saved["links"])
            own = saved.get("object", {})
            for i, slot in enumerate(obj.material_slots):
                slot.material = own.get(str(i))  # the object-level material (None when it had none)
                slot.link = links[i] if i < len(links) else "DATA"
            mesh_materials = obj.data.materials  # type: ignore[union-attr]
            if count == 0:
                mesh_materials.clear()  # pop() down to none leaves the object a stale empty slot
            for _ in range(max(0, min(len(obj.material_slots) - count, len(mesh_materials)))):
                mesh_materials.pop(index=len(mesh_materials) - 1)
            del obj["scenecast_restore"]
            touched = True
        for material in {s.material for s in obj.material_slots if s.material is not None}:
            touched |= _restore_node(material)
        if touched:
            changed.append(obj.name)
    return changed


def _restore_node(material: bpy.types.Material) -> bool:
    saved = material.get("scenecast_base_color")
    tree = material.node_tree
    if saved is None or tree is None:
        return False
    principled = tree.nodes.get(saved["node"])
    for name in (TEXTURE_NODE, UV_NODE):
        node = tree.nodes.get(name)
        if node is not None:
            tree.nodes.remove(node)
    if principled is not None and saved["from_node"]:
        source = tree.nodes.get(saved["from_node"])
        socket = next((s for s in source.outputs if s.identifier == saved["from_socket"]), None) if source else None
        if socket is not None:
            tree.links.new(socket, principled.inputs["Base Color"])
    del material["scenecast_base_color"]
    return True
