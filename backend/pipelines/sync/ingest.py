"""The one call the job ingest needs for a ``texture_sync`` job's correspondence part.

``routes_jobs`` (multipart) must keep the parts named by ``spec.blob_keys()`` as raw bytes (not PNG),
call ``check`` on each to refuse a bad part before queueing (400, the ``ValueError``'s message), and pass
the result into ``run_job``'s inputs mapping under the same key (``Correspondence`` or the raw bytes:
the stage accepts both). It also refuses, as an ``UnsupportedModel`` (a 400 naming the fix), what the
stage cannot do with the job's model family (``flow.check_stage``: cross-view attention on flow models).
"""

from __future__ import annotations

from typing import Any

from ...models.errors import ModelError
from ...models.manager import model_family
from . import flow, wire
from .stage import correspondence_of


def check(data: bytes, spec: Any, key: str) -> wire.Correspondence:
    """Parse ``data`` and check it against the ``texture_sync`` stage of ``spec`` that names ``key``."""

    stage = next(st for st in spec.stages if getattr(st, "correspondence", None) == key)
    if stage.cross_view_attention:  # refused for flow families here, before queueing (UnsupportedModel: 400)
        try:
            family = model_family(spec.resolved(stage, "model"))
        except ModelError:
            family = None  # a model that is not there: the queue's model check says so
        flow.check_stage(stage, family)
    # the latent grid is the image / 8 for every family the backend serves (SD1.5, SDXL, Flux-style VAEs)
    return correspondence_of(data, len(stage.views), spec.width, spec.height, 8)
