"""A small street blockout built by script — the demo's scene, with no binary .blend in the repo.

A road with sidewalks between two rows of box buildings, a lamp post (cylinder), a tree (cylinder trunk
and sphere crown), a car-sized box, a camera at eye height looking down the street (dollying forward
3 units and panning 6° over frames 1-24), and a sun. Each
object gets a Scenecast segmentation class (ADE20K names) when the add-on is registered, so the
segmentation image has meaningful colours.

    import blockout_scene
    scene = blockout_scene.build()                            # a new scene called "Blockout"
    scene = blockout_scene.build(scene=bpy.context.scene)     # into the current (empty) scene
"""

from __future__ import annotations

import math

import bpy

#: (name, primitive, location, scale, rotation_z, ADE20K class). Boxes are 2 units wide at scale 1.
OBJECTS: tuple[tuple[str, str, tuple[float, float, float], tuple[float, float, float], float, str], ...] = (
    ("Road", "plane", (0.0, 20.0, 0.0), (4.0, 30.0, 1.0), 0.0, "road"),
    ("Sidewalk.L", "cube", (-5.5, 20.0, 0.1), (1.5, 30.0, 0.1), 0.0, "sidewalk"),
    ("Sidewalk.R", "cube", (5.5, 20.0, 0.1), (1.5, 30.0, 0.1), 0.0, "sidewalk"),
    ("Building.L1", "cube", (-11.0, 6.0, 5.0), (4.0, 5.0, 5.0), 0.0, "building"),
    ("Building.L2", "cube", (-11.0, 18.0, 8.0), (4.0, 6.0, 8.0), 0.0, "building"),
    ("Building.L3", "cube", (-11.0, 32.0, 4.0), (4.0, 7.0, 4.0), 0.0, "building"),
    ("Building.R1", "cube", (11.0, 8.0, 7.0), (4.0, 6.0, 7.0), 0.0, "building"),
    ("Building.R2", "cube", (11.0, 24.0, 5.0), (4.0, 9.0, 5.0), 0.0, "building"),
    ("Lamp", "cylinder", (4.6, 4.0, 2.5), (0.12, 0.12, 2.5), 0.0, "streetlight"),
    ("Tree.Trunk", "cylinder", (-5.0, 12.0, 1.2), (0.25, 0.25, 1.2), 0.0, "tree"),
    ("Tree.Crown", "sphere", (-5.0, 12.0, 3.6), (1.6, 1.6, 1.8), 0.0, "tree"),
    ("Car", "cube", (1.8, 9.0, 0.75), (1.0, 2.2, 0.6), math.radians(4.0), "car"),
)


def _add(primitive: str, location: tuple[float, float, float]) -> bpy.types.Object:
    """A primitive as a new mesh object (data API, no bpy.ops: works in any context)."""
    import bmesh

    mesh = bpy.data.meshes.new("mesh")
    bm = bmesh.new()
    if primitive == "plane":
        bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=1.0)
    elif primitive == "cube":
        bmesh.ops.create_cube(bm, size=2.0)
    elif primitive == "cylinder":
        bmesh.ops.create_cone(bm, cap_ends=True, segments=24, radius1=1.0, radius2=1.0, depth=2.0)
    elif primitive == "sphere":
        bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16, radius=1.0)
    else:
        raise ValueError(f"unknown primitive {primitive!r}")
    bm.to_mesh(mesh)
    bm.free()
    if primitive in ("cylinder", "sphere"):
        mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    obj = bpy.data.objects.new("obj", mesh)
    obj.location = location
    return obj


def build(
    name: str = "Blockout", resolution: tuple[int, int] = (512, 512), scene: bpy.types.Scene | None = None
) -> bpy.types.Scene:
    """The street, camera and sun in ``scene`` (default: a new scene ``name``, made the window's scene
    when there is a window)."""
    if scene is None:
        scene = bpy.data.scenes.new(name)
    else:
        scene.name = name
    for obj_name, primitive, location, scale, rot_z, klass in OBJECTS:
        obj = _add(primitive, location)
        obj.name = obj.data.name = obj_name
        obj.scale = scale
        obj.rotation_euler.z = rot_z
        scene.collection.objects.link(obj)
        settings = getattr(obj, "scenecast", None)
        if settings is not None:
            settings.segment_class = klass

    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = 28.0
    cam_data.clip_start, cam_data.clip_end = 0.1, 200.0
    camera = bpy.data.objects.new("Camera", cam_data)
    camera.location = (0.5, -6.0, 1.7)
    camera.rotation_euler = (math.radians(86.0), 0.0, 0.0)  # looking down +y, slightly down
    scene.collection.objects.link(camera)
    scene.camera = camera
    # A slow dolly down the street with a slight pan (frames 1-24), for concept-frame sequences; the
    # camera at frame 1 is the still camera above.
    for frame, location, pan in ((1, (0.5, -6.0, 1.7), 0.0), (24, (0.0, -3.0, 1.7), 6.0)):
        camera.location, camera.rotation_euler.z = location, math.radians(pan)
        camera.keyframe_insert("location", frame=frame)
        camera.keyframe_insert("rotation_euler", index=2, frame=frame)
    camera.location, camera.rotation_euler.z = (0.5, -6.0, 1.7), 0.0
    scene.frame_start, scene.frame_end = 1, 24

    sun_data = bpy.data.lights.new("Sun", type="SUN")
    sun_data.energy = 3.0
    sun = bpy.data.objects.new("Sun", sun_data)
    sun.rotation_euler = (math.radians(50.0), math.radians(10.0), math.radians(30.0))
    scene.collection.objects.link(sun)

    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    window = getattr(bpy.context, "window", None)
    if window is not None and window.scene != scene:
        window.scene = scene
    return scene
