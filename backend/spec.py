"""The job spec: what a client asks the backend to do, validated in one place.

A job is an ordered list of stages; each stage consumes the image of the one before. Fields common to
all stages (model, prompt, seed, ...) sit on the job and may be overridden per stage. Images are never
inline: a spec names them by key, and the request carries them as binary parts (or they were uploaded
first and are named by their ``sha256:<hex>`` id). The JSON schema in docs/ is generated from these
classes (``python -m backend schema``), so this file is the single definition.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .version import PROTOCOL

MAX_SIDE = 2048
MIN_SIDE = 64
MAX_STEPS = 150
MAX_CONTROLNETS = 4

ImageKey = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Scheduler = Literal["euler_a", "euler", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "lcm"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ControlNetUnit(_Strict):
    """One ControlNet: a conditioning image, the ControlNet that reads it and how strongly.

    ``model`` may be omitted when ``type`` says what the image is: the backend then picks the standard
    ControlNet for that type and the job's base model family (see docs/models.md).
    """

    image: ImageKey
    type: Literal["depth", "normal", "edges", "canny", "lineart", "segmentation", "other"] = "other"
    model: str | None = Field(default=None, max_length=512)
    weight: float = Field(default=1.0, ge=0.0, le=2.0)
    start: float = Field(default=0.0, ge=0.0, le=1.0, description="fraction of the steps where it starts")
    end: float = Field(default=1.0, ge=0.0, le=1.0, description="fraction of the steps where it stops")
    mode: Literal["balanced", "prompt", "control"] = Field(
        default="balanced",
        description="balanced: both CFG branches see the control; prompt: control weakened towards the end;"
        " control: only the conditional branch sees it (guess mode)",
    )

    @model_validator(mode="after")
    def _start_before_end(self) -> "ControlNetUnit":
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be less than end ({self.end})")
        if self.model is None and self.type == "other":
            raise ValueError("give the ControlNet `model`, or a `type` so the backend can choose one")
        return self


class LoraRef(_Strict):
    name: str = Field(min_length=1, max_length=512, description="hub id, local .safetensors path or installed name")
    weight: float = Field(default=1.0, ge=-4.0, le=4.0)


class CommonFields(_Strict):
    """Fields a job sets for all stages and a stage may override. ``None`` on a stage means: inherit."""

    model: str | None = Field(default=None, max_length=512)
    prompt: str | None = Field(default=None, max_length=4000)
    negative_prompt: str | None = Field(default=None, max_length=4000)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    steps: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    guidance: float | None = Field(default=None, ge=0.0, le=30.0)
    scheduler: Scheduler | None = None
    loras: list[LoraRef] | None = Field(default=None, max_length=8)


class GenerateStage(CommonFields):
    """txt2img, steered by any number of ControlNets."""

    type: Literal["generate"] = "generate"
    controlnets: list[ControlNetUnit] = Field(default_factory=list, max_length=MAX_CONTROLNETS)


class Img2ImgStage(CommonFields):
    """Refine an image: the previous stage's, or ``image`` when this is the first stage."""

    type: Literal["img2img"] = "img2img"
    image: ImageKey | None = None
    strength: float = Field(default=0.5, gt=0.0, le=1.0)
    controlnets: list[ControlNetUnit] = Field(default_factory=list, max_length=MAX_CONTROLNETS)


class InpaintStage(CommonFields):
    """Repaint where ``mask`` is white (255); keep where it is black. Projection uses it for unseen texels."""

    type: Literal["inpaint"] = "inpaint"
    image: ImageKey | None = None
    mask: ImageKey
    strength: float = Field(default=1.0, gt=0.0, le=1.0)
    controlnets: list[ControlNetUnit] = Field(default_factory=list, max_length=MAX_CONTROLNETS)


Stage = Annotated[Union[GenerateStage, Img2ImgStage, InpaintStage], Field(discriminator="type")]


class JobSpec(CommonFields):
    """A whole job. Required on the job (or on every stage): model and prompt."""

    protocol: int = Field(default=PROTOCOL, description="the protocol version the client speaks")
    width: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    height: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    preview_every: int = Field(default=0, ge=0, le=MAX_STEPS, description="0: no previews")
    stages: list[Stage] = Field(min_length=1, max_length=8)
    name: str | None = Field(default=None, max_length=200, description="free text, recorded in the output")

    @model_validator(mode="after")
    def _check(self) -> "JobSpec":
        if self.protocol != PROTOCOL:
            raise ValueError(f"protocol {self.protocol} is not supported; this backend speaks protocol {PROTOCOL}")
        first = self.stages[0]
        if isinstance(first, (Img2ImgStage, InpaintStage)) and first.image is None:
            raise ValueError(f"the first stage ({first.type}) needs an `image`: nothing comes before it")
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
            if isinstance(stage, (Img2ImgStage, InpaintStage)) and stage.image:
                keys.add(stage.image)
            if isinstance(stage, InpaintStage):
                keys.add(stage.mask)
        return keys

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
