"""Scenecast backend: a local server that runs Stable Diffusion + ControlNet jobs for the Blender add-on.

Layers, each importing only the ones below it:
``api`` (HTTP + WebSocket) -> ``jobs`` (queue, events, cancel) -> ``pipelines`` (stages) -> ``models``.
"""

import os

# CPU inference shares the machine with Blender (rendering passes while a job runs) and other work.
# OpenMP's default busy-wait makes torch's threads spin against them: measured on a loaded 2-core
# machine, a builtin:tiny job took 51 s with spinning and 2.5 s with passive waits. Set before torch
# loads libgomp; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .version import PROTOCOL, __version__  # noqa: E402

__all__ = ["PROTOCOL", "__version__"]
