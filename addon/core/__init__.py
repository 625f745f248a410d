"""Scenecast core: everything the add-on does that needs no Blender.

Pure numpy and the standard library, because it runs inside Blender's bundled Python where nothing
can be pip-installed, and because it is tested without Blender. ``addon/blender`` turns scene data
into the plain arrays these modules take; nothing here imports ``bpy``.

Modules, one job each:

- ``conventions``  — depth / normal control-image conventions, defined once.
- ``edges``        — geometric edges (silhouettes, creases) and a numpy Canny.
- ``segmentation`` — the ADE20K palette and object-id → segmentation image.
- ``png``          — PNG encode/decode with text chunks (zlib only).
- ``websocket``    — a minimal RFC 6455 client.
- ``client``       — the protocol-1 backend client.
- ``jobspec``      — building protocol-1 job specs from UI values and presets.
"""
