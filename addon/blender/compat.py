"""Every difference between the Blender versions Scenecast supports (4.2 LTS, 4.5 LTS, 5.0, 5.3), in one place.

The rest of ``addon/`` calls these functions and never asks for ``bpy.app.version`` itself, so a new
Blender release means reading this file, not the whole add-on. Each entry says which version changed
what. ``make test`` runs the Blender and end-to-end tests on all four versions.
"""

from __future__ import annotations

from typing import Any

import bpy

#: The running Blender, e.g. ``(4, 5, 15)``.
VERSION: tuple[int, int, int] = tuple(bpy.app.version)  # type: ignore[assignment]

#: Channel names of the Object Index pass in a multilayer EXR: "IndexOB" until 4.5, "Object Index" since 5.0.
OBJECT_INDEX_CHANNELS: tuple[str, ...] = ("IndexOB.X", "Object Index.X")


def ensure_material_nodes(material: bpy.types.Material) -> None:
    """Give a new material its node tree: 4.x needs ``use_nodes = True``; 5.0 always has nodes and
    deprecates the flag."""
    if VERSION < (5, 0, 0):
        material.use_nodes = True


def set_media_type(image_settings: bpy.types.ImageFormatSettings, media_type: str) -> None:
    """5.0+ filters ``file_format`` by ``media_type`` ("IMAGE", "MULTI_LAYER_IMAGE", "VIDEO"), which
    must be set first; 4.x has no media type."""
    if hasattr(image_settings, "media_type"):
        image_settings.media_type = media_type  # type: ignore[assignment]


def _has_compositor_effects(scene: bpy.types.Scene) -> bool:
    # 5.3 made the compositor a stack of effects; reading scene.compositing_node_group (even with
    # hasattr) warns there that it goes away in 6.0, so this is asked first.
    return "compositor_effects" in scene.bl_rna.properties


def compositor_state_path(scene: bpy.types.Scene) -> str:
    """The attribute path (below the scene) that says which compositor the scene runs, for
    ``scene_state`` to capture and restore: ``use_nodes`` on 4.x, ``compositing_node_group`` on
    5.0-5.2, the active effect's node group on 5.3+."""
    if _has_compositor_effects(scene):
        return "compositor_effects.active.node_group"
    if "compositing_node_group" in scene.bl_rna.properties:
        return "compositing_node_group"
    return "use_nodes"


def compositor_node_group(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    """The node tree the compositor runs, or None when there is none (4.x: ``scene.node_tree`` when
    ``use_nodes``)."""
    if _has_compositor_effects(scene):
        active = scene.compositor_effects.active  # type: ignore[attr-defined]
        return active.node_group if active is not None else None
    if "compositing_node_group" in scene.bl_rna.properties:
        return scene.compositing_node_group  # type: ignore[attr-defined]
    return scene.node_tree if scene.use_nodes else None  # type: ignore[attr-defined]


def compositor_tree(scene: bpy.types.Scene) -> tuple[bpy.types.NodeTree, bool]:
    """The scene's compositor node tree to add nodes to, created when it has none; returns
    ``(tree, created)``. A created tree has only its output (Group Output with an "Image" socket on
    5.x, a Composite node on 4.x), so the caller links its node to ``output.inputs[0]``."""
    tree = compositor_node_group(scene)
    if tree is not None:
        return tree, False
    if VERSION >= (5, 0, 0):
        tree = bpy.data.node_groups.new(f"{scene.name} Compositor", "CompositorNodeTree")  # type: ignore[assignment]
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")  # type: ignore[union-attr]
        out = tree.nodes.new("NodeGroupOutput")  # type: ignore[union-attr]
        out.location = (200.0, 300.0)
        if _has_compositor_effects(scene):  # 5.3+: an effect holds the tree
            effects = scene.compositor_effects  # type: ignore[attr-defined]
            effect = effects.active or effects.new(name=tree.name)  # type: ignore[union-attr]
            effect.node_group = tree
        else:
            scene.compositing_node_group = tree  # type: ignore[attr-defined]
        return tree, True  # type: ignore[return-value]
    scene.use_nodes = True  # 4.x: the scene's own node tree, which starts with Render Layers → Composite
    tree = scene.node_tree  # type: ignore[attr-defined]
    for node in list(tree.nodes):
        if node.bl_idname != "CompositorNodeComposite":
            tree.nodes.remove(node)
    if not any(n.bl_idname == "CompositorNodeComposite" for n in tree.nodes):
        tree.nodes.new("CompositorNodeComposite")
    return tree, True


def sequencer_strips(editor: bpy.types.SequenceEditor) -> Any:
    """The editor's top-level strips: ``editor.strips`` since 5.0, ``editor.sequences`` on 4.x."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences  # type: ignore[attr-defined]


def strip_start(strip: Any) -> int:
    """Timeline frame where a strip's content begins: ``content_start`` since 5.3, which deprecates
    ``frame_start`` (removed in 6.0)."""
    return int(strip.content_start if hasattr(strip, "content_start") else strip.frame_start)


def strip_range(strip: Any) -> tuple[int, int]:
    """The frames a strip shows, ``(first, end)`` with ``end`` exclusive: ``left_handle`` and
    ``right_handle`` since 5.3, ``frame_final_start`` and ``frame_final_end`` before."""
    if hasattr(strip, "left_handle"):
        return int(strip.left_handle), int(strip.right_handle)
    return int(strip.frame_final_start), int(strip.frame_final_end)


def world_matrix(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> Any:
    """``obj``'s world matrix as evaluated in ``depsgraph`` (a ``mathutils.Matrix``).

    4.2 and 4.5 without a window event loop (bpy as a module, ``blender -b``) do not copy evaluated
    transforms back to the original objects until a render or a frame change, so ``obj.matrix_world``
    of an object just created or moved by a script is still the identity there; 5.0 copies them back.
    The evaluated copy is right on every version.
    """
    return obj.evaluated_get(depsgraph).matrix_world
