"""Panels: they only draw settings and operators; every action is an operator."""

from __future__ import annotations

from . import frames, main, reference, texture

#: Parents before children (Frames and Texture are children of the main panel).
classes: tuple[type, ...] = (*main.classes, *texture.classes, *frames.classes, *reference.classes)
