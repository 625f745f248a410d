"""One settings resolver for every feature: (scene settings, preferences, call overrides) → :class:`JobSettings`.

Each value comes from the call when given (not None), else the scene's Scenecast settings (the
sidebar), else the default below; ``server``/``model`` override the add-on preferences. One place
checks the prompt (empty or blank is refused), the size (``core.jobspec.validate_size``) and the
ControlNet unit types, so Generate, Stylize and Texture Objects accept and refuse the same things.

The features differ only in their :class:`FeatureDefaults`: which ControlNet units run when nobody
names any, and whether the scene's preset and units apply (texturing runs its own inpaint
pipeline, so it takes neither).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bpy

from ..blender import image_pixels
from ..blender import settings as blender_settings
from ..core import backend_process, model_list
from ..core.jobspec import REFERENCE_KEY, validate_size
from ..core.preflight import fit_size
from ..core.remote_job import JobRequest

#: ControlNet unit types made from the scene, which are also the image keys they travel under.
CONTROL_TYPES: tuple[str, ...] = ("depth", "normal", "edges", "segmentation")
#: Depth at full weight: Generate's unit when neither the call nor the scene names any.
DEPTH_UNIT: dict[str, Any] = {"type": "depth", "weight": 1.0, "start": 0.0, "end": 1.0}
#: Layout from depth, crisp silhouettes and creases from edges (loosened for the last fifth of the steps).
DEPTH_EDGES_UNITS: tuple[dict[str, Any], ...] = (
    DEPTH_UNIT,
    {"type": "edges", "weight": 0.6, "start": 0.0, "end": 0.8},
)


@dataclass(frozen=True)
class FeatureDefaults:
    """What a feature does when neither the call nor the scene says: see the module doc."""

    units: tuple[dict[str, Any], ...]
    scene_units: bool = True  # the scene's ControlNet units list applies
    scene_preset: bool = True  # the scene's preset applies


GENERATE = FeatureDefaults(units=(DEPTH_UNIT,))
STYLIZE = FeatureDefaults(units=DEPTH_EDGES_UNITS)
TEXTURING = FeatureDefaults(units=DEPTH_EDGES_UNITS, scene_units=False, scene_preset=False)


@dataclass(frozen=True)
class JobSettings:
    """Everything a feature's jobs share, resolved and validated once on the main thread.

    ``params`` are the job fields (prompt, negative_prompt, seed, steps, guidance, width, height,
    preset, preview_every); ``units`` the ControlNet units; ``fields`` the ``JobRequest`` fields
    that say where and how a job runs (server, model, backend start-up, output folder, offline).
    """

    prompt: str
    negative_prompt: str | None
    seed: int
    steps: int | None
    guidance: float | None
    width: int
    height: int
    preset: str | dict[str, Any] | None
    preview_every: int
    units: tuple[dict[str, Any], ...]
    fields: dict[str, Any] = field(default_factory=dict)
    # --- model options (issue 13): the sampler and LoRAs; None / () leave the preset's or the default
    scheduler: str | None = None
    loras: tuple[dict[str, Any], ...] = ()
    # -- VAE (issue 13): a VAE id instead of the model's own; None keeps the preset's or the model's
    vae: str | None = None
    # -- reference image (IP-Adapter): see the "reference images" block below
    reference: tuple[dict[str, Any], ...] = ()  # stage `reference` entries, image key REFERENCE_KEY
    reference_image: Any = None  # H x W x 3 uint8, or FIRST_VIEW (set per job by the feature)

    @property
    def first_view_reference(self) -> bool:
        """The first view's/frame's result becomes the reference of the later jobs."""
        return bool(self.reference) and isinstance(self.reference_image, str) and self.reference_image == FIRST_VIEW

    @property
    def params(self) -> dict[str, Any]:
        params = {
            "prompt": self.prompt, "negative_prompt": self.negative_prompt, "seed": self.seed, "steps": self.steps,
            "guidance": self.guidance, "width": self.width, "height": self.height, "preset": self.preset,
            "preview_every": self.preview_every,
            **({"reference": [dict(r) for r in self.reference]}
               if self.reference and not self.first_view_reference else {}),
        }  # fmt: skip
        params.update(self.model_options)
        return params

    @property
    def model_options(self) -> dict[str, Any]:
        """The job fields of the model options that are set (issue 13): ``scheduler``, ``loras``."""
        options: dict[str, Any] = {}
        if self.scheduler is not None:
            options["scheduler"] = self.scheduler
        if self.loras:
            options["loras"] = [dict(lora) for lora in self.loras]
        # -- VAE (issue 13)
        if self.vae:
            options["vae"] = self.vae
        return options

    def request(self, images: Mapping[str, Any] | None = None, name: str = "", **changes: Any) -> JobRequest:
        """A ``JobRequest`` of these settings; ``changes``: params/units/other fields to replace."""
        all_images = dict(images or {})
        if self.reference and not self.first_view_reference:
            all_images[REFERENCE_KEY] = self.reference_image
        request = JobRequest(params=self.params, units=[dict(u) for u in self.units], images=all_images,
                             name=name, **self.fields)
        return dataclasses.replace(request, **changes) if changes else request

    def replace(self, **changes: Any) -> JobSettings:
        return dataclasses.replace(self, **changes)


def _pick(value: Any, settings: Any, name: str, default: Any) -> Any:
    if value is not None:
        return value
    return getattr(settings, name, default) if settings is not None else default


def _scene_units(settings: Any) -> list[dict[str, Any]] | None:
    if settings is None or not len(settings.units):
        return None
    units = []
    for u in settings.units:
        if u.enabled:
            unit = {"type": u.type, "weight": u.weight, "start": u.start, "end": u.end}
            if getattr(u, "model", "").strip():  # empty: the family's default ControlNet for the type
                unit["model"] = u.model.strip()
            units.append(unit)
    return units


# --- model options (issue 13): scheduler and LoRAs from the call, else the scene -------------------

#: ``Scene.scenecast.scheduler`` when the preset's (or the backend's default) sampler applies.
DEFAULT_SCHEDULER = "DEFAULT"


def _scene_scheduler(settings: Any) -> str | None:
    value = getattr(settings, "scheduler", DEFAULT_SCHEDULER) if settings is not None else DEFAULT_SCHEDULER
    return None if value == DEFAULT_SCHEDULER else str(value)


def _scene_loras(settings: Any) -> list[dict[str, Any]]:
    return [{"name": lora.name.strip(), "weight": float(lora.weight)} for lora in getattr(settings, "loras", ())
            if lora.enabled and lora.name.strip()]


# -- VAE (issue 13)
def _scene_vae(settings: Any) -> str | None:
    value = str(getattr(settings, "vae", "") or "").strip() if settings is not None else ""
    return value or None


def request_fields(
    scene: bpy.types.Scene | None, prefs: blender_settings.Preferences | None = None, *, model: str | None = None,
    server: str | None = None, timeout: float | None = None, output_dir: str | None = None,
) -> dict[str, Any]:
    """The ``JobRequest`` fields that say where and how a job runs: the call's values, else the scene's
    model and the add-on preferences."""
    prefs = prefs or blender_settings.preferences()
    s = blender_settings.scene_settings(scene) if scene is not None else None
    scene_model = s.model.strip() if s is not None and s.model.strip() else None
    return {
        "server": backend_process.normalize_url(server or prefs.server),
        "output_dir": output_dir or blender_settings.output_dir(prefs),
        "model": model or scene_model,
        "default_model": prefs.default_model,
        "token": prefs.token,
        "ca_file": prefs.ca_file,
        "auto_start": prefs.auto_start,
        "backend_python": prefs.backend_python,
        "backend_dir": prefs.backend_dir,
        "log_path": prefs.log_path,
        "models_folders": prefs.models_folders,
        "timeout": timeout,
        "offline": prefs.offline,
    }


# -- reference images (IP-Adapter) --------------------------------------------------------------------

#: ``reference="first view"``: Texture Objects / Stylize Frames hold the first view's (frame's) look.
FIRST_VIEW = "first view"
DEFAULT_REFERENCE_WEIGHT = 0.6


def _reference(value: Any, weight: float | None, settings: Any) -> tuple[tuple[dict[str, Any], ...], Any]:
    """(stage reference entries, image) from the call's ``reference`` (a path, a Blender image, an
    H x W x 3 uint8 array or "first view"), else the scene's Reference setting; ``((), None)`` for none."""
    if value is None and settings is not None:
        if getattr(settings, "reference_first_view", False):
            value = FIRST_VIEW
        elif getattr(settings, "reference_image", None) is not None:
            value = settings.reference_image
    if value is None or (isinstance(value, str) and not value.strip()):
        return (), None
    w = _pick(weight, settings, "reference_weight", DEFAULT_REFERENCE_WEIGHT)
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= float(w) <= 2.0:
        raise ValueError(f"reference_weight {w!r}: use a number from 0 to 2 (0 ignores the reference)")
    entry = ({"image": REFERENCE_KEY, "weight": round(float(w), 4)},)  # Blender floats are float32
    if isinstance(value, str) and value.strip().lower() == FIRST_VIEW:
        return entry, FIRST_VIEW
    return entry, image_pixels.reference_pixels(value)


def with_reference(request: JobRequest, settings: JobSettings, image: Any) -> JobRequest:
    """``request`` with the settings' reference entries and ``image`` (a later view/frame of a
    "first view" run); unchanged when the settings have no first-view reference."""
    if not settings.first_view_reference or image is None:
        return request
    params = {**request.params, "reference": [dict(r) for r in settings.reference]}
    return dataclasses.replace(request, params=params, images={**request.images, REFERENCE_KEY: image})


def resolve(
    scene: bpy.types.Scene,
    prefs: blender_settings.Preferences | None = None,
    *,
    defaults: FeatureDefaults = GENERATE,
    prompt: str | None = None,
    preset: str | Mapping[str, Any] | None = None,
    model: str | None = None,
    server: str | None = None,
    negative_prompt: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    width: int | None = None,
    height: int | None = None,
    units: Iterable[Mapping[str, Any]] | None = None,
    timeout: float | None = None,
    preview_every: int | None = None,
    output_dir: str | None = None,
    reference: Any = None,
    reference_weight: float | None = None,
    scheduler: str | None = None,
    loras: Iterable[Mapping[str, Any]] | None = None,
    vae: str | None = None,
) -> JobSettings:
    """The feature's settings; raises ``ValueError`` naming the fix before anything is changed.

    ``reference``: a style/reference image (path, Blender image, uint8 array, or "first view"), else the
    scene's; ``reference_weight`` (0..2) how strongly it steers."""
    s = blender_settings.scene_settings(scene)
    text = _pick(prompt, s, "prompt", "")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the prompt is empty: type what the image should show in Scenecast › Prompt, or pass prompt=")
    fields = request_fields(scene, prefs, model=model, server=server, timeout=timeout, output_dir=output_dir)
    if width is None and height is None and (s is None or getattr(s, "size_from_render", False)):
        width, height = render_size(scene, fields["model"] or fields["default_model"], fields["server"])
    w, h = validate_size(_pick(width, s, "width", 512), _pick(height, s, "height", 512))
    if preset is None and defaults.scene_preset and s is not None and s.preset != blender_settings.NO_PRESET:
        preset = s.preset
    if units is not None:
        unit_list = [dict(u) for u in units]
    else:
        scene_units = _scene_units(s) if defaults.scene_units else None
        unit_list = scene_units if scene_units is not None else ([] if preset else [dict(u) for u in defaults.units])
    for unit in unit_list:
        if unit.get("type") not in CONTROL_TYPES:
            raise ValueError(
                f"unknown ControlNet unit type {unit.get('type')!r}: use one of {', '.join(CONTROL_TYPES)}"
            )
    # With a preset, the scene's steps/guidance/negative prompt do not override the preset's own;
    # arguments given to the call always do.
    scene_values = None if preset else s
    ref_entries, ref_image = _reference(reference, reference_weight, s)
    return JobSettings(
        prompt=text,
        negative_prompt=_pick(negative_prompt, scene_values, "negative_prompt", None),
        seed=int(_pick(seed, s, "seed", 0)),
        steps=_pick(steps, scene_values, "steps", None),
        guidance=_pick(guidance, scene_values, "guidance", None),
        width=w,
        height=h,
        preset=dict(preset) if isinstance(preset, Mapping) else preset,
        preview_every=int(_pick(preview_every, s, "preview_every", 0)),
        units=tuple(unit_list),
        fields=fields,
        scheduler=scheduler if scheduler is not None else _scene_scheduler(scene_values),
        loras=tuple(dict(lora) for lora in (loras if loras is not None else _scene_loras(s))),
        vae=(vae.strip() or None) if isinstance(vae, str) else _scene_vae(s),  # -- VAE (issue 13)
        reference=ref_entries,
        reference_image=ref_image,
    )


# --- default size from the scene's render resolution (issue 13) -------------------------------------


def render_size(scene: bpy.types.Scene, model: str, server: str | None = None) -> tuple[int, int]:
    """The default size: the scene's render resolution (× its %) with its aspect, the longest side at
    most the model family's default (``core.preflight.fit_size``), sides rounded to the family's
    multiple. The family comes from the backend's cached model list, else from the model's name."""
    r = scene.render
    scale = r.resolution_percentage / 100.0
    family = model_list.family_of(model, server)
    return fit_size(round(r.resolution_x * scale), round(r.resolution_y * scale), family=family)
