"""Scenecast core: everything the add-on does that needs no Blender.

Pure numpy and the standard library, because it runs inside Blender's bundled Python where nothing
can be pip-installed, and because it is tested without Blender. ``addon/blender`` turns scene data
into the plain arrays these modules take; nothing here imports ``bpy``.

Modules, one job each:

- ``conventions``     — depth / normal control-image conventions, defined once (docs/conventions.md).
- ``bounds``          — scene bounding boxes clipped to the view frustum, for the depth range.
- ``edges``           — geometric edges (silhouettes, depth jumps, creases) and a numpy Canny.
- ``segmentation``    — the ADE20K palette and object ids → segmentation image.
- ``flow``            — Vector pass → flows, backward warp, disocclusion mask, flicker metric.
- ``png``             — PNG encode/decode with text chunks (zlib only).
- ``errors``          — ``ScenecastError`` and its kinds: a message and a fix for the user.
- ``websocket``       — a minimal RFC 6455 client.
- ``client``          — the protocol-1 backend client.
- ``jobspec``         — protocol-1 job specs from UI values and presets.
- ``backend_process`` — finding, starting and stopping a local backend.
- ``remote_job``      — one job from prepared inputs to result files.
"""
