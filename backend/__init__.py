"""Scenecast backend: a local server that runs Stable Diffusion + ControlNet jobs for the Blender add-on.

Layers, each importing only the ones below it:
``api`` (HTTP + WebSocket) -> ``jobs`` (queue, events, cancel) -> ``pipelines`` (stages) -> ``models``.
"""

from .version import PROTOCOL, __version__

__all__ = ["PROTOCOL", "__version__"]
