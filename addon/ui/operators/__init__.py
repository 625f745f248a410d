"""Operators. The feature operators (Generate, Stylize Frame, Stylize Frames, Texture Objects) are thin
subclasses of ``ui.job_operator.JobOperator``: build the feature's run, report its result."""

from __future__ import annotations

from . import (backend, generate, install_backend, model_options, project, scene_tools, stylize_frame, stylize_frames,
               texture_objects)

classes: tuple[type, ...] = (
    *scene_tools.classes,
    *generate.classes,
    *stylize_frame.classes,
    *stylize_frames.classes,
    *texture_objects.classes,
    *project.classes,
    *backend.classes,
    *install_backend.classes,
    *model_options.classes,
)
