"""Version numbers. ``PROTOCOL`` changes whenever a client would need to change; the add-on checks it."""

__version__ = "0.1.0"
PROTOCOL = 1
