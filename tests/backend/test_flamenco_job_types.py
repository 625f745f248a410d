"""The Flamenco job types in tools/flamenco/, compiled under Node with a stand-in of Flamenco's ``author`` API.

No Flamenco Manager runs here: ``_flamenco_standin.js`` implements the documented job-compiler functions
(``author.Task``, ``author.Command``, ``job.addTask``, ``task.addDependency``, ``frameChunker``, ``path``),
and these tests check the tasks, commands and chunks the scripts produce — and that every command line is
one examples/stylize_frames.py and examples/texture_objects.py accept.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).with_name("_flamenco_standin.js")
FRAMES = ROOT / "tools" / "flamenco" / "scenecast_stylize_frames.js"
TEXTURES = ROOT / "tools" / "flamenco" / "scenecast_texture_objects.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (apt-get install nodejs)")


def node(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NODE or "node", str(STANDIN), *args], capture_output=True, text=True, timeout=60)


def job_type(script: Path) -> dict[str, Any]:
    proc = node(str(script), "describe")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def compile_job(script: Path, **settings: Any) -> list[dict[str, Any]]:
    """What the Flamenco add-on submits: every setting, the JOB_TYPE's default where the artist set none."""
    full = {s["key"]: s["default"] for s in job_type(script)["settings"] if "default" in s}
    full.update(settings)
    proc = node(str(script), "compile", json.dumps(full))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["tasks"]


def load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def script_argv(command: dict[str, Any]) -> list[str]:
    """The arguments Blender hands the --python script: everything after ``--``."""
    args = command["parameters"]["args"]
    assert args[0] == "--python" and args[2] == "--"
    return args[3:]


def assert_blender_render(command: dict[str, Any]) -> None:
    """The parameter types the Worker's blender-render command documents (strings and lists of strings)."""
    p = command["parameters"]
    assert command["name"] == "blender-render"
    assert p["exe"] == "{blender}" and p["exeArgs"] == "{blenderArgs}" and isinstance(p["blendfile"], str)
    assert all(isinstance(a, str) for a in p["argsBefore"] + p["args"]), p["args"]


@pytest.mark.parametrize("script", [FRAMES, TEXTURES])
def test_job_types_declare_their_settings_in_flamencos_shape(script: Path) -> None:
    jt = job_type(script)
    assert jt["label"].startswith("Scenecast")
    keys = [s["key"] for s in jt["settings"]]
    assert len(keys) == len(set(keys)) and "blendfile" in keys
    for s in jt["settings"]:
        assert s["type"] in ("string", "int32", "float", "bool"), s
        if "default" in s:
            expected = {"string": str, "int32": int, "float": (int, float), "bool": bool}[s["type"]]
            assert isinstance(s["default"], expected), s


def test_a_shot_splits_into_frame_chunks_each_one_stylize_frames_run() -> None:
    tasks = compile_job(FRAMES, frames="1-20", chunk_size=8, blendfile="/proj/shot.blend", scene="Shot",
                        out="//frames", prompt="a rainy street", seed=7, server="http://gpu1:7437")
    assert [t["name"] for t in tasks] == ["stylize-1-8", "stylize-9-16", "stylize-17-20"]
    assert all(t["type"] == "blender" and len(t["commands"]) == 1 and t["dependencies"] == [] for t in tasks)
    parse = load_example("stylize_frames").parse
    ranges = []
    for task in tasks:
        command = task["commands"][0]
        assert_blender_render(command)
        assert command["parameters"]["blendfile"] == "/proj/shot.blend"
        assert command["parameters"]["args"][1] == "{scenecast}/examples/stylize_frames.py"
        args = parse(script_argv(command))  # the script's own CLI accepts it
        ranges.append((args.start, args.end))
        assert (args.out, args.prompt, args.seed, args.server, args.scene) == \
            ("/proj/frames", "a rainy street", 7, "http://gpu1:7437", "Shot")
        assert args.depth_range is None and args.steps is None and not args.no_consistency and not args.video
    assert ranges == [(1, 8), (9, 16), (17, 20)]


def test_gappy_frame_lists_chunk_like_the_manager_and_each_run_stays_contiguous() -> None:
    tasks = compile_job(FRAMES, frames="3..8, 13, 15-17, 40", chunk_size=8, blendfile="/p/s.blend",
                        depth_near=0.5, depth_far=80.0)
    assert [t["name"] for t in tasks] == ["stylize-3-8,13,15", "stylize-16,17,40"]
    parse = load_example("stylize_frames").parse
    runs = [[(a.start, a.end) for a in (parse(script_argv(c)) for c in t["commands"])] for t in tasks]
    assert runs == [[(3, 8), (13, 13), (15, 15)], [(16, 16), (17, 17), (40, 40)]]
    assert parse(script_argv(tasks[0]["commands"][0])).depth_range == [0.5, 80.0]


def test_the_video_task_waits_for_every_chunk() -> None:
    tasks = compile_job(FRAMES, frames="1-10", chunk_size=4, blendfile="/p/s.blend", out="/renders/s", video=True,
                        fps=24.0)
    video = tasks[-1]
    assert video["name"] == "video" and video["type"] == "ffmpeg"
    assert sorted(video["dependencies"]) == [0, 1, 2]
    p = video["commands"][0]["parameters"]
    assert video["commands"][0]["name"] == "frames-to-video"
    assert (p["inputGlob"], p["outputFile"], p["fps"]) == ("/renders/s/frame_*.png", "/renders/s/scenecast_frames.mp4", 24.0)


def test_a_bad_frame_range_fails_the_compile() -> None:
    full = {s["key"]: s["default"] for s in job_type(FRAMES)["settings"] if "default" in s}
    proc = node(str(FRAMES), "compile", json.dumps({**full, "frames": "1-x", "blendfile": "/p/s.blend"}))
    assert proc.returncode == 3 and "invalid range" in proc.stderr


def test_a_texture_batch_splits_into_objects_each_one_texture_objects_run() -> None:
    tasks = compile_job(TEXTURES, objects="Car, Building.L1,,Lamp Post, Car", objects_per_task=2,
                        blendfile="/proj/set.blend", scene="Set", out="//tex", prompt="hand-painted", seed=5, views=4,
                        texture_size=512)
    assert [t["name"] for t in tasks] == ["texture-Car+Building.L1", "texture-Lamp Post"]
    parse = load_example("texture_objects").parse
    batches = []
    for task in tasks:
        assert task["type"] == "blender" and len(task["commands"]) == 1
        assert_blender_render(task["commands"][0])
        args = parse(script_argv(task["commands"][0]))
        batches.append(args.objects)
        assert (args.out, args.prompt, args.seed, args.views, args.texture_size, args.scene, args.size) == \
            ("/proj/tex", "hand-painted", 5, 4, 512, "Set", None)
    assert batches == [["Car", "Building.L1"], ["Lamp Post"]]


def test_an_empty_texture_batch_fails_the_compile_with_the_fix() -> None:
    full = {s["key"]: s["default"] for s in job_type(TEXTURES)["settings"] if "default" in s}
    proc = node(str(TEXTURES), "compile", json.dumps({**full, "objects": " , ", "prompt": "x", "blendfile": "/p/s.blend"}))
    assert proc.returncode == 3 and "select mesh objects" in proc.stderr


def test_the_standin_chunker_matches_flamencos_documented_behaviour(tmp_path: Path) -> None:
    """The stand-in must not be kinder than the Manager: its chunker is checked on the Manager's own cases."""
    probe = ("const r = frameChunker('1..10,20..25,40', 4); if (JSON.stringify(r) !== JSON.stringify("
             "['1-4','5-8','9,10,20,21','22-25','40'])) throw 'chunker: ' + JSON.stringify(r);"
             "const JOB_TYPE = {label: 'probe', settings: []}; function compileJob(job) {}")
    path = tmp_path / "probe.js"
    path.write_text(probe)
    proc = node(str(path), "describe")
    assert proc.returncode == 0, proc.stderr
