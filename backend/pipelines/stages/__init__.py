"""The stage types a job can chain; each module's ``run(ctx) -> image`` consumes ``ctx.source``."""

from collections.abc import Callable

import numpy as np

from . import generate, img2img, inpaint
from .context import StageContext, StageParams

STAGES: dict[str, Callable[[StageContext], np.ndarray]] = {
    "generate": generate.run,
    "img2img": img2img.run,
    "inpaint": inpaint.run,
}

__all__ = ["STAGES", "StageContext", "StageParams"]
