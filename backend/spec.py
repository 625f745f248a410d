"""The job spec: what a client asks the backend to do, validated in one place.

A job is an ordered list of stages; each stage consumes the image of the one before. Fields common to
all stages (model, prompt, seed, ...) sit on the job and may be overridden per stage. Images are never
inline: a spec names them by key, and the request carries them as binary parts (or they were uploaded
first and are named by their ``sha256:<hex>`` id). The JSON schema in docs/ is generated from these
classes (``python -m backend schema``), so this file is the single definition.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .version import PROTOCOL

MAX_SIDE = 2048
MIN_SIDE = 64
MAX_STEPS = 150
MAX_CONTROLNETS = 4
MAX_SYNC_VIEWS = 16
MAX_REFERENCES = 4

ImageKey = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Scheduler = Literal["euler_a", "euler", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "lcm"]


class _Strict(BaseModel):
    """Strict, as documented: unknown fields are refused, and so are values of the wrong JSON type
    (``"2"`` or ``true`` for a number) instead of being converted."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ControlNetUnit(_Strict):
    """One ControlNet: a conditioning image, the ControlNet that reads it and how strongly.

    ``model`` may be omitted when ``type`` says what the image is: the backend then picks the standard
    ControlNet for that type and the job's base model family (see docs/models.md).
    """

    image: ImageKey = Field(description="key of the conditioning image")
    type: Literal["depth", "normal", "edges", "canny", "lineart", "segmentation", "other"] = "other"
    model: str | None = Field(default=None, max_length=512, description="ControlNet model id; default: by type")
    weight: float = Field(default=1.0, ge=0.0, le=2.0)
    start: float = Field(default=0.0, ge=0.0, le=1.0, description="fraction of the steps where it starts")
    end: float = Field(default=1.0, ge=0.0, le=1.0, description="fraction of the steps where it stops")
    mode: Literal["balanced", "prompt", "control"] = Field(
        default="balanced",
        description="balanced: both CFG branches see the control; prompt: the prompt matters more"
        " (A1111's 'My prompt is more important': shallower residuals scaled down, 0.825 per level);"
        " control: only the conditional branch sees it (guess mode)",
    )

    @model_validator(mode="after")
    def _start_before_end(self) -> "ControlNetUnit":
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be less than end ({self.end})")
        if self.model is None and self.type == "other":
            raise ValueError("give the ControlNet `model`, or a `type` so the backend can choose one")
        return self


class ReferenceImage(_Strict):
    """A style/reference image (IP-Adapter on SD1.5 and SDXL): the result takes on its look.

    ``model`` may be omitted: the backend picks the family's standard IP-Adapter (docs/models.md)."""

    image: ImageKey = Field(description="key of the reference image")
    weight: float = Field(default=1.0, ge=0.0, le=2.0, description="how strongly it steers: 0 ignores it")
    start: float = Field(default=0.0, ge=0.0, le=1.0, description="fraction of the steps where it starts")
    end: float = Field(default=1.0, ge=0.0, le=1.0, description="fraction of the steps where it stops")
    model: str | None = Field(default=None, max_length=512,
                              description="IP-Adapter id (builtin:tiny-ip-adapter, hub repo:file, .safetensors path);"
                              " default: the family's")

    @model_validator(mode="after")
    def _start_before_end(self) -> "ReferenceImage":
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be less than end ({self.end})")
        return self


class LoraRef(_Strict):
    name: str = Field(min_length=1, max_length=512, description="hub id, local .safetensors path or installed name")
    weight: float = Field(default=1.0, ge=-4.0, le=4.0, description="strength of the LoRA")


class CommonFields(_Strict):
    """Fields a job sets for all stages and a stage may override. ``None`` on a stage means: inherit."""

    model: str | None = Field(default=None, max_length=512, description="base model: hub id, local diffusers folder,"
                              " .safetensors file or builtin:tiny (see GET /v1/models)")
    prompt: str | None = Field(default=None, max_length=4000, description="what to make")
    negative_prompt: str | None = Field(default=None, max_length=4000, description="what to steer away from")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="same seed + spec + device: same pixels")
    steps: int | None = Field(default=None, ge=1, le=MAX_STEPS, description="denoising steps of a stage")
    guidance: float | None = Field(default=None, ge=0.0, le=30.0, description="classifier-free guidance scale")
    scheduler: Scheduler | None = Field(default=None, description="the sampler")
    loras: list[LoraRef] | None = Field(default=None, max_length=8, description="LoRAs applied to the base model")
    # -- VAE (issue 13)
    vae: str | None = Field(default=None, min_length=1, max_length=512,
                            description="a VAE instead of the model's own: hub id, diffusers AutoencoderKL folder,"
                            " .safetensors VAE file or models-folder VAE name; same latent channels as the model")


class GenerateStage(CommonFields):
    """txt2img, steered by any number of ControlNets."""

    type: Literal["generate"] = "generate"
    controlnets: list[ControlNetUnit] = Field(default_factory=list, max_length=MAX_CONTROLNETS)
    reference: list[ReferenceImage] = Field(default_factory=list, max_length=MAX_REFERENCES,
                                            description="style/reference images (IP-Adapter)")


class Img2ImgStage(CommonFields):
    """Refine an image: the previous stage's, or ``image`` when this is the first stage."""

    type: Literal["img2img"] = "img2img"
    image: ImageKey | None = Field(default=None, description="key of the image to refine (first stage only)")
    strength: float = Field(default=0.5, gt=0.0, le=1.0, description="how much to change: 1 repaints fully")
    controlnets: list[ControlNetUnit] = Field(default_factory=list, max_length=MAX_CONTROLNETS)
    reference: list[ReferenceImage] = Field(default_factory=list, max_length=MAX_REFERENCES,
                                            description="style/reference images (IP-Adapter)")


class InpaintStage(CommonFields):
    """Repaint where ``mask`` is white (255); keep where it is black. Projection uses it for unseen texels."""

    type: Literal["inpaint"] = "inpaint"
    image: ImageKey | None = Field(default=None, description="key of the image to repaint (first stage only)")
    mask: ImageKey = Field(description="key of the mask: white repaints, black keeps")
    strength: float = Field(default=1.0, gt=0.0, le=1.0, description="how much to change: 1 repaints fully")
    controlnets: list[ControlNetUnit] = Field(default_factory=list, max_length=MAX_CONTROLNETS)
    reference: list[ReferenceImage] = Field(default_factory=list, max_length=MAX_REFERENCES,
                                            description="style/reference images (IP-Adapter)")


class SyncView(_Strict):
    """One view of a ``texture_sync`` stage: its ControlNet passes and an optional prompt suffix."""

    controlnets: list[ControlNetUnit] = Field(default_factory=list, max_length=MAX_CONTROLNETS)
    prompt_suffix: str = Field(default="", max_length=200, description='appended to the prompt, e.g. "back view"')


class TextureSyncStage(CommonFields):
    """Synchronized multi-view texturing (docs/projection.md): N views denoised together through one
    packed texture given by the ``correspondence`` part (docs/protocol.md). Returns the N view images,
    then the baked texture and its weight map as strips of ``texture_width`` packed texels per row."""

    type: Literal["texture_sync"] = "texture_sync"
    views: list[SyncView] = Field(min_length=1, max_length=MAX_SYNC_VIEWS)
    correspondence: ImageKey = Field(description="key of the correspondence part (application/x-scenecast-correspondence)")
    sync_fraction: float = Field(default=0.8, ge=0.0, le=1.0, description="share of the steps fused in texture space")
    power_start: float = Field(default=1.0, ge=0.0, le=32.0, description="|cos| exponent of the first fused step")
    power_end: float = Field(default=6.0, ge=0.0, le=32.0, description="|cos| exponent of the last fused step")
    bake_power: float = Field(default=6.0, ge=0.0, le=32.0, description="|cos| exponent of the final bake")
    texture_width: int = Field(default=1024, ge=1, le=8192, description="packed texels per row of the texture outputs")
    cross_view_attention: bool = Field(default=False, description="self-attention also attends to the two"
                                       " neighbouring views (and the reference view early on): more style agreement,"
                                       " ~3x the self-attention cost; UNet families only (refused for flow transformers)")
    reference_view: int | None = Field(default=0, ge=0, lt=MAX_SYNC_VIEWS, description="view attended by all"
                                       " in the early steps (cross_view_attention); null: none")
    reference_fraction: float = Field(default=0.5, ge=0.0, le=1.0, description="share of the steps the reference is attended")
    reference: list[ReferenceImage] = Field(default_factory=list, max_length=MAX_REFERENCES,
                                            description="style/reference images (IP-Adapter; FLUX.1: Redux) steering every"
                                            " view alike; not to be confused with `reference_view`")
    micro_batch: int | None = Field(default=None, ge=1, le=2 * MAX_SYNC_VIEWS,
                                    description="samples per denoiser call: UNets count both CFG branches, FLUX.1 views (Z-Image and"
                                    " Qwen-Image run 1); default: from free memory")

    @model_validator(mode="after")
    def _same_units(self) -> "TextureSyncStage":
        first = [(u.type, u.model) for u in self.views[0].controlnets]
        for i, view in enumerate(self.views):
            if [(u.type, u.model) for u in view.controlnets] != first:
                raise ValueError(f"views[{i}] has other ControlNets than views[0]: every view needs the same "
                                 "types and models, in the same order (only the images differ)")
            if self.reference_view is not None and self.reference_view >= len(self.views):
                raise ValueError(f"reference_view {self.reference_view} is not one of the {len(self.views)} views")
            if any(u.mode == "control" for u in view.controlnets):
                raise ValueError("ControlNet mode `control` (guess mode) is not available in texture_sync")
        return self

    @property
    def controlnets(self) -> list[ControlNetUnit]:
        """Every view's units, view after view (what records and model checks walk)."""
        return [u for v in self.views for u in v.controlnets]


Stage = Annotated[Union[GenerateStage, Img2ImgStage, InpaintStage, TextureSyncStage], Field(discriminator="type")]


class JobSpec(CommonFields):
    """A whole job. Required on the job (or on every stage): model and prompt."""

    protocol: int = Field(default=PROTOCOL, description="the protocol version the client speaks")
    width: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="output width, pixels")
    height: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="output height, pixels")
    preview_every: int = Field(default=0, ge=0, le=MAX_STEPS, description="0: no previews")
    stages: list[Stage] = Field(min_length=1, max_length=8, description="run in order, each on the one before's image")
    name: str | None = Field(default=None, max_length=200, description="free text, recorded in the output")

    @model_validator(mode="after")
    def _check(self) -> "JobSpec":
        if self.protocol != PROTOCOL:
            raise ValueError(f"protocol {self.protocol} is not supported; this backend speaks protocol {PROTOCOL}")
        first = self.stages[0]
        if isinstance(first, (Img2ImgStage, InpaintStage)) and first.image is None:
            raise ValueError(f"the first stage ({first.type}) needs an `image`: nothing comes before it")
        if any(isinstance(st, TextureSyncStage) for st in self.stages) and len(self.stages) > 1:
            raise ValueError("a texture_sync stage must be the job's only stage: it makes N views and a texture")
        for i, stage in enumerate(self.stages):
            for name in ("model", "prompt"):
                if getattr(stage, name) is None and getattr(self, name) is None:
                    raise ValueError(f"stages[{i}] has no `{name}`: set it on the job or on the stage")
        return self

    def image_keys(self) -> set[str]:
        """Every image key the spec refers to; each must arrive with the job."""
        keys: set[str] = set()
        for stage in self.stages:
            keys.update(unit.image for unit in stage.controlnets)
            keys.update(ref.image for ref in getattr(stage, "reference", ()))
            if isinstance(stage, (Img2ImgStage, InpaintStage)) and stage.image:
                keys.add(stage.image)
            if isinstance(stage, InpaintStage):
                keys.add(stage.mask)
        return keys

    def blob_keys(self) -> set[str]:
        """Keys of binary parts that are not images (texture_sync correspondences): they arrive as raw
        bytes, checked with ``backend.pipelines.sync.ingest.check``, never decoded as PNG."""
        return {st.correspondence for st in self.stages if isinstance(st, TextureSyncStage)}

    def resolved(self, stage: Stage, field: str):  # noqa: ANN201 - returns the field's own type
        """A stage's value for a common field, falling back to the job's, then to the default."""
        value = getattr(stage, field)
        if value is None:
            value = getattr(self, field)
        return DEFAULTS.get(field) if value is None else value


DEFAULTS: dict[str, object] = {
    "negative_prompt": "",
    "seed": 0,
    "steps": 20,
    "guidance": 7.5,
    "scheduler": "euler_a",
    "loras": [],
}


STAGE_TYPES = ("generate", "img2img", "inpaint")
MAX_INT_DIGITS = 100
"""Longer integer literals are never valid anywhere in a spec; they are not converted at all (Python
refuses to turn more than 4300 digits into an int, which would otherwise surface as a 500)."""


class HugeNumber:
    """Stands in for an integer literal of more than ``MAX_INT_DIGITS`` digits, so that validation can
    refuse it at its field (no int field accepts it) and the message can say what it was."""

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"a number of {self.digits} digits"


def _parse_int(text: str) -> int | HugeNumber:
    return HugeNumber(text) if len(text) > MAX_INT_DIGITS else int(text)


def loads_json(text: str | bytes) -> object:
    """``json.loads`` for specs: integer literals too long to be valid become :class:`HugeNumber`.
    Raises ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``) for text that is not JSON."""
    return json.loads(text, parse_int=_parse_int)


TYPE_HINTS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
}


def _type_hint(kind: str, got: object) -> str:
    """What to send instead, for the JSON-type mistakes strict validation refuses."""
    wanted = TYPE_HINTS.get(kind)
    if wanted is None:
        return ""
    if isinstance(got, str):
        return f": write {wanted} without quotes"
    if isinstance(got, bool):
        return f": true/false is not {wanted}"
    if isinstance(got, float) and wanted == "an integer":
        return ": give a whole number, without a decimal point"
    return ""


def _shown(got: object) -> str:
    if isinstance(got, (dict, list)) or got is None:
        return ""
    try:
        return f" (got {repr(got)[:60]})"
    except ValueError:  # an int too long for repr
        return " (got a very long number)"


def _field_path(loc: tuple) -> str:
    """``("stages", 0, "generate", "weight")`` -> ``stages[0].weight`` (drops pydantic's union tag)."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and isinstance(loc[i - 1], int) and part in STAGE_TYPES:
            continue  # the discriminator tag pydantic inserts after a stage's index
        else:
            out += ("." if out else "") + str(part)
    return out or "spec"


def validation_message(errors: list[dict]) -> str:
    """One readable line per problem, each naming the field, from ``ValidationError.errors()``."""
    lines = []
    for err in errors:
        path = _field_path(tuple(err.get("loc", ())))
        kind = err.get("type", "")
        msg = str(err.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if kind == "extra_forbidden":
            lines.append(f"{path}: unknown field")
        elif kind == "missing":
            lines.append(f"{path}: required field is missing")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            lines.append(f"{path}: `type` must be one of {', '.join(STAGE_TYPES)}")
        elif isinstance(err.get("input"), HugeNumber):
            lines.append(f"{path}: {err['input']!r} is out of range; see the field's limits in docs/spec.md")
        else:
            got = err.get("input")
            lines.append(f"{path}: {msg}{_shown(got)}{_type_hint(kind, got)}")
    return "; ".join(lines)


# -- presets: partial specs shipped as presets/<name>.json ------------------------------------------------
# A checkout keeps them at its root (the add-on reads them too); an installed wheel has them as
# backend/presets/ (pyproject.toml maps the folder).
PRESETS_DIR = next((d for d in (Path(__file__).resolve().parent.parent / "presets",
                                Path(__file__).resolve().parent / "presets") if d.is_dir()),
                   Path(__file__).resolve().parent / "presets")


def list_presets(directory: Path = PRESETS_DIR) -> dict[str, dict]:
    """name -> preset (a partial job spec plus a ``description``), from ``directory/*.json``."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))}


def apply_preset(preset: dict, spec: dict) -> dict:
    """Overlay ``spec``'s top-level fields on the preset's; the result still needs validating.

    Shallow on purpose: a spec that gives ``stages`` replaces the preset's stages whole, so what runs
    is always readable from one of the two files.
    """
    merged = {k: v for k, v in preset.items() if k != "description"}
    merged.update({k: v for k, v in spec.items() if k != "preset"})
    return merged
