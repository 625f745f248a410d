"""Every PropertyGroup of the add-on: per-scene generation and frame settings, per-object classes.

``Scene.scenecast`` holds what the sidebar panel shows (saved with the .blend, undoable);
``Scene.scenecast_frames`` what the Frames panel shows (Stylize Frame / Stylize Frames);
``Object.scenecast`` holds the object's class for the segmentation ControlNet image;
``WindowManager.scenecast_status`` / ``scenecast_progress`` hold the running job's status line — on the
window manager because it is neither saved nor undone.
"""

from __future__ import annotations

import json
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..blender import settings as blender_settings
from ..blender.settings import NO_CLASS, NO_PRESET
from ..core import jobspec, model_list
from ..core.segmentation import ADE20K_CLASSES

#: ControlNet unit types the add-on can produce from the scene (the keys of ``Passes.control``).
UNIT_TYPES = (
    ("depth", "Depth", "Depth pass: near bright, normalised against the job's near/far"),
    ("normal", "Normal", "Camera-space normals, ControlNet 1.1 convention"),
    ("edges", "Edges", "Geometric edges: silhouettes and creases, white on black"),
    ("segmentation", "Segmentation", "ADE20K colours from each object's Scenecast class (objects without one: black)"),
)
#: How a texture is shown on an object (Texture Objects, Project Image).
MATERIAL_ITEMS = (
    ("new", "New Material", "A new material with the texture in every slot (the old one can be restored)"),
    ("node", "Image Node", "An Image Texture node into the Base Color of the object's own material"),
)
# -- Texture Objects mode (issue 14; features.texturing.MODES) --
TEXTURE_MODE_ITEMS = (
    ("synchronized", "Synchronized", "All views denoised together through one texture: no seams between views"),
    ("sequential", "Sequential", "One view after another, each inpainting what the views before left"),
    ("separate", "Separate", "Each view on its own, baked together (the baseline; views may disagree)"),
)
__all__ = ["NO_CLASS", "NO_PRESET", "MATERIAL_ITEMS", "TEXTURE_MODE_ITEMS", "UNIT_TYPES", "classes"]


def _preset_items(self: Any, context: Any) -> list[tuple[str, str, str]]:
    items = [(NO_PRESET, "None", "No preset: the values below as they are")]
    for name, description in available_presets():
        items.append((name, name.replace("-", " ").title(), description))
    _preset_items_cache[:] = items  # Blender needs the strings kept alive
    return items


_preset_items_cache: list[tuple[str, str, str]] = []


def available_presets() -> list[tuple[str, str]]:
    """``(name, description)`` of the shipped presets and the user's own (user folder, marked "yours")."""
    out = []
    user = jobspec.user_preset_dir()
    for name, path in jobspec.available_presets().items():
        try:
            description = str(json.loads(path.read_text(encoding="utf-8")).get("description", ""))
        except (OSError, ValueError):
            description = "(unreadable: generating with it reports why)"
        if user is not None and path.parent == user:
            description = f"(yours, {path}) {description}"
        out.append((name, description))
    return out


def _class_items() -> list[tuple[str, str, str]]:
    items = [(NO_CLASS, "None", "No class: the segmentation image draws the object black (unlabelled), like the background")]
    for name in sorted(ADE20K_CLASSES):
        items.append((name, name.title(), f"ADE20K class '{name}'"))
    return items


# --- installed-model search lists (issue 13) ----------------------------------------------------------
# Blender calls these while drawing a search menu: they answer from core.model_list's cache at once and
# refresh it in the background (GET /v1/models), so a slow or absent backend never blocks the UI.
# Any text may be typed too (search_options SUGGESTION): a hub id, a file name, a local path.


def _search(kind: str, edit_text: str, extra: tuple[str, ...] = (), family: str | None = None) -> list[tuple[str, str]]:
    """Installed models of ``kind`` whose id holds ``edit_text``, labelled with family, GGUF quantization
    and where they are (core.model_list.label); ``family``: only those that go with that base family."""
    prefs = blender_settings.preferences()
    items = model_list.search_items(prefs.server, kind, prefs.token, family=family)
    text = edit_text.strip().lower()
    found = [(i, f"installed {kind}") for i in extra if text in i.lower()]
    found += [(i, what) for i, what in items if text in i.lower() and i not in extra]
    if not items:
        why = model_list.error(prefs.server)
        if why is None and model_list.cached(prefs.server, refresh_if_old=False) is not None:
            of = f" for {model_list.FAMILY_LABELS.get(family, family)} models" if family else ""
            why = f"no installed {kind}{of} on the backend (type a hub id or a file name)"
        found.append(("", why or "fetching the backend's model list… (type a hub id or a file name meanwhile)"))
    return found


def _base_family(context: Any) -> str | None:
    """The family of the scene's base model (its own, else the preference's default), from the backend's
    list or its name; None when unknown (then every ControlNet is offered)."""
    prefs = blender_settings.preferences()
    scene = getattr(context, "scene", None)
    own = getattr(getattr(scene, "scenecast", None), "model", "") or ""
    return model_list.family_of(own.strip() or prefs.default_model, prefs.server)


def _search_models(self: Any, context: Any, edit_text: str) -> list[tuple[str, str]]:
    return _search("base", edit_text, ("builtin:tiny",))


def _search_controlnets(self: Any, context: Any, edit_text: str) -> list[tuple[str, str]]:
    return _search("controlnet", edit_text, family=_base_family(context))


def _search_loras(self: Any, context: Any, edit_text: str) -> list[tuple[str, str]]:
    return _search("lora", edit_text)


# -- VAE (issue 13)
def _search_vaes(self: Any, context: Any, edit_text: str) -> list[tuple[str, str]]:
    return _search("vae", edit_text)


SCHEDULER_ITEMS = [("DEFAULT", "Default", "The preset's sampler, else the backend's default (euler_a)")] + [
    (name, name.replace("_", " ").replace("dpmpp", "DPM++").title().replace("Dpm++", "DPM++"), f"Sampler {name}")
    for name in jobspec.SCHEDULERS
]


class SCENECAST_PG_lora(bpy.types.PropertyGroup):
    """One LoRA on the base model: installed name, file or hub id, and its weight."""

    enabled: BoolProperty(name="Enabled", default=True)  # type: ignore[valid-type]
    name: StringProperty(  # type: ignore[valid-type]
        name="LoRA", description="An installed LoRA (search), or a hub id / .safetensors file", default="",
        search=_search_loras,
    )
    weight: FloatProperty(name="Weight", default=1.0, min=-4.0, max=4.0, soft_min=0.0, soft_max=1.5)  # type: ignore[valid-type]


class SCENECAST_PG_unit(bpy.types.PropertyGroup):
    """One ControlNet unit: which pass conditions the image, how strongly and over which steps."""

    enabled: BoolProperty(name="Enabled", default=True)  # type: ignore[valid-type]
    type: EnumProperty(name="Pass", items=UNIT_TYPES, default="depth")  # type: ignore[valid-type]
    weight: FloatProperty(name="Weight", default=1.0, min=0.0, max=2.0)  # type: ignore[valid-type]
    start: FloatProperty(  # type: ignore[valid-type]
        name="Start", description="Fraction of the steps where the unit starts", default=0.0, min=0.0, max=1.0,
        subtype="FACTOR",
    )
    end: FloatProperty(  # type: ignore[valid-type]
        name="End", description="Fraction of the steps where the unit stops", default=1.0, min=0.0, max=1.0,
        subtype="FACTOR",
    )
    # --- the unit's ControlNet model (issue 13) ---
    model: StringProperty(  # type: ignore[valid-type]
        name="Model", description="The ControlNet model (search the installed ones, or type a hub id / file);"
                                  " empty: the model family's default for this pass", default="",
        search=_search_controlnets,
    )


def _size_set(settings: Any, context: Any = None) -> None:
    """Width or Height was set (UI or script): that size is the user's, not the render's. (A plain
    function: a lambda in the annotation would run with the annotation's evaluation globals.)"""
    if settings.size_from_render:
        settings.size_from_render = False


class SCENECAST_PG_scene(bpy.types.PropertyGroup):
    """What the next generation asks for; ``api.generate`` falls back to these for unset arguments."""

    model: StringProperty(  # type: ignore[valid-type]
        name="Model", description="Base model: search the backend's installed models (cache, models folders,"
                                  " builtins) or type a hub id; empty uses the add-on preference's default model",
        default="", search=_search_models,
    )
    prompt: StringProperty(name="Prompt", default="")  # type: ignore[valid-type]
    negative_prompt: StringProperty(name="Negative", default="")  # type: ignore[valid-type]
    seed: IntProperty(name="Seed", default=0, min=0)  # type: ignore[valid-type]
    steps: IntProperty(name="Steps", default=20, min=1, max=150)  # type: ignore[valid-type]
    guidance: FloatProperty(name="Guidance", default=7.5, min=0.0, max=30.0)  # type: ignore[valid-type]
    width: IntProperty(  # type: ignore[valid-type]
        name="Width", description="Output width in pixels (a multiple of 8)", default=512, min=64, max=2048, step=8,
        update=_size_set,
    )
    height: IntProperty(  # type: ignore[valid-type]
        name="Height", description="Output height in pixels (a multiple of 8)", default=512, min=64, max=2048, step=8,
        update=_size_set,
    )
    # --- size from the render (issue 13) ---
    size_from_render: BoolProperty(  # type: ignore[valid-type]
        name="Size from Render", default=True,
        description="Use the scene's render resolution and aspect, fitted to the model (longest side 1024 for"
                    " SD 1.5, 1536 for SDXL and flow models); setting Width or Height turns this off",
    )
    preset: EnumProperty(name="Preset", items=_preset_items)  # type: ignore[valid-type]
    preview_every: IntProperty(  # type: ignore[valid-type]
        name="Preview Every", description="Show a preview every N steps (0: none)", default=5, min=0, max=150,
    )
    units: CollectionProperty(type=SCENECAST_PG_unit)  # type: ignore[valid-type]
    active_unit: IntProperty(default=0)  # type: ignore[valid-type]
    depth_override: BoolProperty(  # type: ignore[valid-type]
        name="Set Depth Range",
        description="Normalise depth against the near/far below instead of the scene's bounds",
        default=False,
    )
    depth_near: FloatProperty(name="Near", default=0.1, min=1e-4, unit="LENGTH")  # type: ignore[valid-type]
    depth_far: FloatProperty(name="Far", default=100.0, min=1e-3, unit="LENGTH")  # type: ignore[valid-type]
    # --- model options (issue 13): sampler and LoRAs ---
    scheduler: EnumProperty(name="Sampler", items=SCHEDULER_ITEMS, default="DEFAULT")  # type: ignore[valid-type]
    loras: CollectionProperty(type=SCENECAST_PG_lora)  # type: ignore[valid-type]
    active_lora: IntProperty(default=0)  # type: ignore[valid-type]
    # -- VAE (issue 13)
    vae: StringProperty(  # type: ignore[valid-type]
        name="VAE", description="A VAE instead of the model's own: an installed VAE (search), a hub id, a"
        " diffusers folder or a .safetensors file; empty: the model's own", default="", search=_search_vaes,
    )

    # -- reference image (IP-Adapter; features/settings.py resolve) --------------------------------------
    reference_image: PointerProperty(  # type: ignore[valid-type]
        name="Reference", type=bpy.types.Image, description="Style/reference image the results take the look of",
    )
    reference_weight: FloatProperty(  # type: ignore[valid-type]
        name="Reference Weight", description="How strongly the reference steers (0: ignored)",
        default=0.6, min=0.0, max=2.0,
    )
    reference_first_view: BoolProperty(  # type: ignore[valid-type]
        name="Hold First View's Look",
        description="Texture Objects (sequential mode) / Stylize Frames: the first view's (frame's) result"
        " becomes the reference of the later ones",
        default=False,
    )

    # -- Texture Objects mode (issue 14): api.texture_objects(mode=None) and the operator start from it --
    texture_mode: EnumProperty(name="Texture Mode", items=TEXTURE_MODE_ITEMS,  # type: ignore[valid-type]
                               default="synchronized")


class SCENECAST_PG_object(bpy.types.PropertyGroup):
    """An object's class in the segmentation image (ADE20K names)."""

    segment_class: EnumProperty(  # type: ignore[valid-type]
        name="Class", description="What this object is, for the segmentation ControlNet", items=_class_items(),
        default=NO_CLASS,
    )


INIT_ITEMS = (
    ("NONE", "None", "Generate from the ControlNets alone"),
    ("CLAY", "Clay", "Start from the clay render (img2img)"),
    ("COLOR", "Colour", "Start from a colour render with the scene's materials (img2img)"),
)


class SCENECAST_PG_frames(bpy.types.PropertyGroup):
    """How Stylize Frame and Stylize Frames run."""

    from_view: BoolProperty(  # type: ignore[valid-type]
        name="From View", default=False,
        description="Stylize what the 3D Viewport shows instead of the scene camera's view (single frame)",
    )
    init: EnumProperty(name="Start From", items=INIT_ITEMS, default="NONE")  # type: ignore[valid-type]
    init_strength: FloatProperty(  # type: ignore[valid-type]
        name="Init Strength", default=0.6, min=0.01, max=1.0, subtype="FACTOR",
        description="How much of the clay/colour render is repainted (1: all)",
    )
    refine: FloatProperty(  # type: ignore[valid-type]
        name="Refine", default=0.0, min=0.0, max=1.0, subtype="FACTOR",
        description="Strength of a final img2img refine stage (0: none)",
    )
    camera_background: BoolProperty(name="Camera Background", default=False,  # type: ignore[valid-type]
                                     description="Show the result behind the camera's view")
    compositor: BoolProperty(name="To Compositor", default=False,  # type: ignore[valid-type]
                             description="Put the result in an Image node 'Scenecast Image' of the compositor")
    use_scene_range: BoolProperty(name="Scene Frame Range", default=True,  # type: ignore[valid-type]
                                  description="Stylize the scene's frame range (else the range below)")
    frame_start: IntProperty(name="Start", default=1)  # type: ignore[valid-type]
    frame_end: IntProperty(name="End", default=24)  # type: ignore[valid-type]
    output_dir: StringProperty(  # type: ignore[valid-type]
        name="Output", subtype="DIR_PATH", default="//scenecast_frames/",
        description="Folder of frame_####.png and the run record; a run continues the frames already there",
    )
    consistency: BoolProperty(  # type: ignore[valid-type]
        name="Consistency", default=True,
        description="Warp the previous frame along the scene's motion, inpaint what it cannot show, refresh lightly",
    )
    hole_strength: FloatProperty(name="Hole Strength", default=1.0, min=0.0, max=1.0,  # type: ignore[valid-type]
                                 subtype="FACTOR", description="Inpaint strength where the previous frame has no pixel")
    refresh_strength: FloatProperty(name="Refresh", default=0.3, min=0.0, max=1.0,  # type: ignore[valid-type]
                                    subtype="FACTOR", description="img2img strength over the whole warped frame (0: skip)")
    dilate_px: IntProperty(name="Hole Margin", default=2, min=0, max=64, subtype="PIXEL",  # type: ignore[valid-type]
                           description="Grow the disocclusion mask by this many pixels")
    add_strip: BoolProperty(name="Sequencer Strip", default=False,  # type: ignore[valid-type]
                            description="Add the frames as an image strip in the Video Sequence Editor")
    encode_video: BoolProperty(name="Video", default=False,  # type: ignore[valid-type]
                               description="Also encode an MP4 with Blender's FFmpeg (the scene is not changed)")



classes = (SCENECAST_PG_lora, SCENECAST_PG_unit, SCENECAST_PG_scene, SCENECAST_PG_object, SCENECAST_PG_frames)


def register_properties() -> None:
    bpy.types.Scene.scenecast = PointerProperty(type=SCENECAST_PG_scene)  # type: ignore[attr-defined, func-returns-value]
    bpy.types.Scene.scenecast_frames = PointerProperty(type=SCENECAST_PG_frames)  # type: ignore[attr-defined, func-returns-value]
    bpy.types.Object.scenecast = PointerProperty(type=SCENECAST_PG_object)  # type: ignore[attr-defined, func-returns-value]
    bpy.types.WindowManager.scenecast_status = StringProperty(default="")  # type: ignore[attr-defined, func-returns-value]
    bpy.types.WindowManager.scenecast_progress = FloatProperty(  # type: ignore[attr-defined, func-returns-value]
        default=0.0, min=0.0, max=1.0, subtype="FACTOR",
    )


def unregister_properties() -> None:
    for owner, name in (
        (bpy.types.WindowManager, "scenecast_progress"),
        (bpy.types.WindowManager, "scenecast_status"),
        (bpy.types.Object, "scenecast"),
        (bpy.types.Scene, "scenecast"),
        (bpy.types.Scene, "scenecast_frames"),
    ):
        if hasattr(owner, name):
            delattr(owner, name)
