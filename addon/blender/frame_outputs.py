"""Where stylized frames go besides their PNGs: the Image Editor, the camera's background, the
compositor, a Video Sequence Editor strip and a video encoded with Blender's own FFmpeg.

Each call changes only what it is asked to: a background image on the camera, a node in the
compositor, a strip in the scene's sequencer. The video is rendered through a temporary scene's
sequencer and written by rename, so the user's scene (render settings, output path) is untouched and
no half-written video is ever left.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import bpy
import numpy as np

from ..core.errors import ScenecastError
from . import compat
from .image_pixels import set_pixels, show_in_image_editors

FRAME_IMAGE = "Scenecast Frame"
COMPOSITOR_NODE = "Scenecast Image"
STRIP_NAME = "Scenecast Frames"


def show_frame(rgb: np.ndarray) -> bpy.types.Image:
    """Show an (H, W, 3) uint8 frame (row 0 top, sRGB) in the image "Scenecast Frame" and open editors."""
    image = bpy.data.images.get(FRAME_IMAGE)
    if image is None:
        image = bpy.data.images.new(FRAME_IMAGE, rgb.shape[1], rgb.shape[0], alpha=False)
    set_pixels(image, rgb)
    show_in_image_editors(image)
    return image


def set_camera_background(camera: bpy.types.Object, image: bpy.types.Image) -> None:
    """Show ``image`` behind the camera's view (the camera data's background images; replaces an
    earlier Scenecast result there, leaves the user's own background images alone)."""
    data = camera.data
    if not isinstance(data, bpy.types.Camera):
        raise ScenecastError(f"{camera.name} is not a camera", "pick the scene camera")
    slot = next((bg for bg in data.background_images
                 if bg.image is not None and (bg.image == image or bg.image.get("scenecast_job"))), None)
    if slot is None:
        slot = data.background_images.new()
    slot.source = "IMAGE"
    slot.image = image
    slot.alpha = 1.0
    slot.display_depth = "BACK"
    data.show_background_images = True


def feed_compositor(scene: bpy.types.Scene, image: bpy.types.Image) -> bpy.types.Node:
    """An Image node "Scenecast Image" holding ``image`` in the scene's compositor.

    A scene without a compositor gets a new one whose output is the image; in an existing compositor
    the node is added (or updated) unconnected, for the user to wire where it belongs.
    """
    tree, created = compat.compositor_tree(scene)
    node = tree.nodes.get(COMPOSITOR_NODE)
    if node is None:
        node = tree.nodes.new("CompositorNodeImage")
        node.name = node.label = COMPOSITOR_NODE
        node.location = (-300.0, 300.0)
    node.image = image  # type: ignore[attr-defined]
    if created:
        output = next((n for n in tree.nodes if n.bl_idname in ("NodeGroupOutput", "CompositorNodeComposite")), None)
        if output is not None:
            tree.links.new(node.outputs["Image"], output.inputs[0])
    return node


def _strips(scene: bpy.types.Scene):  # type: ignore[no-untyped-def]
    editor = scene.sequence_editor_create()
    return editor, compat.sequencer_strips(editor)


def add_image_strip(scene: bpy.types.Scene, paths: Sequence[str], frame_start: int) -> bpy.types.Strip:
    """An image strip of ``paths`` (one folder, consecutive frames) in the scene's sequencer, from
    ``frame_start``, on the first channel above the existing strips. Replaces an earlier Scenecast
    strip of the same frames."""
    if not paths:
        raise ScenecastError("there are no frames to put in the sequencer", "stylize the frames first")
    if len({os.path.dirname(os.path.abspath(p)) for p in paths}) != 1:
        raise ScenecastError("an image strip needs all its frames in one folder", "use one output folder")
    editor, strips = _strips(scene)
    for old in [s for s in strips if s.name.startswith(STRIP_NAME) and compat.strip_start(s) == frame_start]:
        strips.remove(old)
    channel = 1 + max((s.channel for s in strips), default=0)
    strip = strips.new_image(STRIP_NAME, os.path.abspath(paths[0]), channel, int(frame_start))
    for path in paths[1:]:
        strip.elements.append(os.path.basename(path))
    return strip


def encode_video(paths: Sequence[str], output: str, fps: float = 24.0) -> str:
    """Encode the frames (PNG paths in order) as an H.264 MP4 at ``output`` with Blender's FFmpeg.

    Renders a temporary scene's sequencer (removed afterwards), to a temporary name next to
    ``output``, then renames it into place. Returns ``output``.
    """
    if not getattr(bpy.app.build_options, "codec_ffmpeg", False):
        raise ScenecastError("this Blender was built without FFmpeg", "encode the PNG frames with another tool")
    if not paths:
        raise ScenecastError("there are no frames to encode", "stylize the frames first")
    output = os.path.abspath(output)
    folder = os.path.dirname(output)
    os.makedirs(folder, exist_ok=True)
    first = bpy.data.images.load(os.path.abspath(paths[0]), check_existing=False)
    width, height = int(first.size[0]), int(first.size[1])
    bpy.data.images.remove(first)
    temp = bpy.data.scenes.new("Scenecast Encode")
    tmp_base = tempfile.mktemp(prefix=".scenecast-video-", dir=folder)
    written = ""
    try:
        _editor, strips = _strips(temp)
        strip = strips.new_image("frames", os.path.abspath(paths[0]), 1, 1)
        for path in paths[1:]:
            strip.elements.append(os.path.basename(path))
        r = temp.render
        r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
        fps_int = max(1, int(round(fps)))
        r.fps, r.fps_base = fps_int, fps_int / float(fps)
        temp.frame_start, temp.frame_end = 1, len(paths)
        compat.set_media_type(r.image_settings, "VIDEO")
        r.image_settings.file_format = "FFMPEG"
        r.ffmpeg.format, r.ffmpeg.codec = "MPEG4", "H264"
        r.use_sequencer = True
        r.filepath = tmp_base
        written = r.frame_path(frame=1)
        result = bpy.ops.render.render(animation=True, scene=temp.name)
        if result != {"FINISHED"} or not os.path.isfile(written):
            raise ScenecastError("Blender's FFmpeg wrote no video", "look at the console for FFmpeg's message")
        os.replace(written, output)
    finally:
        bpy.data.scenes.remove(temp)
        if written and os.path.exists(written):
            os.remove(written)
    return output
