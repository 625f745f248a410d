"""Models: finding them (hub cache, local folders, single files, builtins), refusing unsafe ones,
loading them onto the chosen device and caching them under a memory budget."""

from .components import BaseComponents
from .defaults import DEFAULT_CONTROLNETS
from .errors import DeviceUnavailable, ModelError, ModelNotFound, UnsafeCheckpoint, UnsupportedModel
from .manager import ModelManager

__all__ = ["BaseComponents", "DEFAULT_CONTROLNETS", "DeviceUnavailable", "ModelError", "ModelManager",
           "ModelNotFound", "UnsafeCheckpoint", "UnsupportedModel"]
