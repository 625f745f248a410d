"""The temporary render setup pass extraction needs, and how it is taken down again.

``configure_render`` sets Cycles (CPU, 1 sample, a 0.01 px box filter), the data passes and a
32-bit multilayer EXR output on the scene; the context managers create temporary data — a clay
material, a Freestyle line set and line style, a Render Result slot — and remove it afterwards.
The user's own settings are put back by ``scene_state.preserved_scene_state``, which callers wrap
around all of this (see ``passes.render_passes``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import bpy
import numpy as np

from ..core.errors import ScenecastError
from . import compat
from .scene_state import pass_flag_paths

#: Name of the temporary clay material (removed after each extraction).
CLAY_MATERIAL_NAME = "Scenecast Clay (temporary)"

#: Name of the Render Result slot our renders go to, so the user's last render stays in its slot.
RENDER_SLOT_NAME = "Scenecast"

#: Clay shading: a "half-Lambert" light from the upper left, near the viewer, in camera space:
#: clay = CLAY_OFFSET + CLAY_SCALE · (n·l), 0.1 (facing away) … 0.95 (facing the light). No clamp
#: kink, so a smooth surface gives Canny no terminator line; neighbouring faces still differ.
CLAY_LIGHT_CAMERA = (-0.35, 0.45, 0.82)
CLAY_OFFSET, CLAY_SCALE = 0.525, 0.425

#: Names of the temporary Freestyle line set and line style (removed after each extraction).
LINESET_NAME = "Scenecast Lines (temporary)"
#: Freestyle's crease threshold is the dihedral angle between faces: 140° = a 40° turn of the normal,
#: the same crease as ``core.edges.DEFAULT_CREASE_ANGLE_DEG``.
FREESTYLE_CREASE_DIHEDRAL_DEG = 140.0


class PassError(ScenecastError, RuntimeError):
    """Extraction cannot run as asked (the message says what to change)."""


def configure_render(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, width: int, height: int) -> None:
    render = scene.render
    try:
        render.engine = "CYCLES"  # type: ignore[assignment]  # Cycles registers its engine id at runtime
    except TypeError:
        raise PassError("passes are rendered with Cycles: enable the Cycles add-on in Preferences › Add-ons") from None
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0  # square pixels: passes line up with the W×H result
    render.use_border = False
    render.film_transparent = True
    render.use_compositing = False  # the user's compositor never runs, so its nodes are never touched
    render.use_sequencer = False
    render.use_motion_blur = False
    render.use_freestyle = False
    render.use_single_layer = True
    render.use_multiview = False
    render.use_stamp = False
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = 1
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.time_limit = 0.0
    cycles.use_layer_samples = "USE"
    view_layer.samples = 0
    view_layer.use_freestyle = False
    for path in pass_flag_paths(view_layer):
        owner = view_layer.cycles if path.startswith("cycles.") else view_layer
        setattr(owner, path.rpartition(".")[2], False)
    view_layer.use_pass_combined = True
    settings = render.image_settings
    compat.set_media_type(settings, "MULTI_LAYER_IMAGE")
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.color_depth = "32"
    settings.exr_codec = "NONE"  # fastest to write and read back; the file lives in RAM
    settings.use_preview = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0


def render_result_image() -> bpy.types.Image | None:
    for image in bpy.data.images:
        if image.type == "RENDER_RESULT":
            return image
    return None


@contextmanager
def render_slot() -> Iterator[None]:
    """Render into a slot of our own, so the user's last render stays in its Render Result slot."""
    image = render_result_image()
    if image is None:  # no render yet: nothing to protect
        yield
        return
    slots = image.render_slots
    previous = slots.active_index
    ours = next((i for i, slot in enumerate(slots) if slot.name == RENDER_SLOT_NAME), None)
    if ours is None:
        slots.new(name=RENDER_SLOT_NAME)
        ours = len(slots) - 1
    slots.active_index = ours
    try:
        yield
    finally:
        slots.active_index = previous


@contextmanager
def clay_material() -> Iterator[bpy.types.Material]:
    """A temporary emission "clay" (see ``CLAY_LIGHT_CAMERA``), removed afterwards."""
    mat = bpy.data.materials.new(CLAY_MATERIAL_NAME)
    try:
        _build_clay_nodes(mat)
        yield mat
    finally:
        bpy.data.materials.remove(mat, do_unlink=True)


def _build_clay_nodes(mat: bpy.types.Material) -> None:
    compat.ensure_material_nodes(mat)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    geometry = nodes.new("ShaderNodeNewGeometry")
    to_camera = nodes.new("ShaderNodeVectorTransform")
    to_camera.vector_type, to_camera.convert_from, to_camera.convert_to = "NORMAL", "WORLD", "CAMERA"
    light = np.asarray(CLAY_LIGHT_CAMERA, dtype=np.float64)
    light /= np.linalg.norm(light)
    dot = nodes.new("ShaderNodeVectorMath")
    dot.operation = "DOT_PRODUCT"
    # Cycles' camera space looks down +z with y up (Blender's looks down -z): flip z of the light.
    dot.inputs[1].default_value = (float(light[0]), float(light[1]), float(-light[2]))
    shade = nodes.new("ShaderNodeMath")
    shade.operation = "MULTIPLY_ADD"
    shade.use_clamp = True
    shade.inputs[1].default_value = CLAY_SCALE
    shade.inputs[2].default_value = CLAY_OFFSET
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(geometry.outputs["Normal"], to_camera.inputs["Vector"])
    links.new(to_camera.outputs["Vector"], dot.inputs[0])
    links.new(dot.outputs["Value"], shade.inputs[0])
    links.new(shade.outputs["Value"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])


@contextmanager
def freestyle_lines(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> Iterator[None]:
    """Freestyle on, as a render pass, with one temporary white 1 px line set (the user's ones off)."""
    settings = view_layer.freestyle_settings
    style = bpy.data.linestyles.new(LINESET_NAME)
    lineset = None
    try:
        style.color, style.alpha, style.thickness = (1.0, 1.0, 1.0), 1.0, 1.0
        for existing in settings.linesets:
            existing.show_render = False  # scene_state puts these flags back
        lineset = settings.linesets.new(LINESET_NAME)
        made_for_it = lineset.linestyle  # a new line set brings a line style of its own: not left behind
        lineset.linestyle = style
        if made_for_it is not None and made_for_it != style and made_for_it.users == 0:
            bpy.data.linestyles.remove(made_for_it)
        lineset.select_by_visibility, lineset.visibility = True, "VISIBLE"
        lineset.select_by_edge_types = True
        lineset.select_silhouette = lineset.select_border = lineset.select_crease = True
        settings.mode = "EDITOR"
        settings.as_render_pass = True
        settings.use_culling = False
        settings.crease_angle = math.radians(FREESTYLE_CREASE_DIHEDRAL_DEG)
        scene.render.use_freestyle = view_layer.use_freestyle = True
        scene.render.line_thickness_mode, scene.render.line_thickness = "ABSOLUTE", 1.0
        yield
    finally:
        if lineset is not None:
            settings.linesets.remove(lineset)
        bpy.data.linestyles.remove(style)
