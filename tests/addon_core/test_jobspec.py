import json
import os
import subprocess
from pathlib import Path

import pytest

from addon.core.errors import ScenecastError
from addon.core.jobspec import (
    SpecError,
    available_presets,
    build_job_spec,
    image_keys,
    load_preset,
    validate_size,
)

ROOT = Path(__file__).resolve().parents[2]
BACKEND_PYTHON = ROOT / ".venv" / "bin" / "python"

PRESET = {
    "description": "test preset",
    "steps": 25,
    "guidance": 6.5,
    "scheduler": "dpmpp_2m_karras",
    "negative_prompt": "blurry",
    "stages": [
        {"type": "generate", "controlnets": [
            {"image": "depth", "type": "depth", "weight": 0.9},
            {"image": "normal", "type": "normal", "weight": 0.6, "end": 0.7},
        ]},
        {"type": "img2img", "strength": 0.35, "steps": 20, "controlnets": [{"image": "depth", "type": "depth", "weight": 0.5}]},
    ],
}


def test_plain_spec_without_preset():
    spec = build_job_spec(model="builtin:tiny", prompt="a cabin", seed=3, units=[{"type": "depth", "weight": 0.8}])
    assert spec == {
        "protocol": 1, "model": "builtin:tiny", "prompt": "a cabin", "negative_prompt": "", "seed": 3,
        "steps": 20, "guidance": 7.5, "width": 512, "height": 512, "preview_every": 0,
        "stages": [{"type": "generate", "controlnets": [{"type": "depth", "weight": 0.8, "image": "depth"}]}],
    }
    assert json.loads(json.dumps(spec)) == spec


def test_preset_values_are_kept_unless_the_caller_sets_them():
    spec = build_job_spec(model="m", prompt="p", preset=PRESET)
    assert "description" not in spec
    assert (spec["steps"], spec["guidance"], spec["scheduler"], spec["negative_prompt"]) == (25, 6.5, "dpmpp_2m_karras", "blurry")
    assert spec["stages"][1]["steps"] == 20 and spec["stages"][1]["strength"] == 0.35
    spec = build_job_spec(model="m", prompt="p", preset=PRESET, steps=30, guidance=5, scheduler="euler", negative_prompt="")
    assert (spec["steps"], spec["guidance"], spec["scheduler"], spec["negative_prompt"]) == (30, 5.0, "euler", "")
    assert PRESET["steps"] == 25  # the caller's preset dict is not modified


def test_units_tune_the_presets_main_stage_by_type_and_add_new_types():
    spec = build_job_spec(
        model="m", prompt="p", preset=PRESET,
        units=[{"type": "depth", "weight": 1.2, "start": 0.1, "end": 0.9}, {"type": "edges", "weight": 0.4}],
    )
    main, refine = spec["stages"]
    assert main["controlnets"] == [
        {"image": "depth", "type": "depth", "weight": 1.2, "start": 0.1, "end": 0.9},
        {"image": "normal", "type": "normal", "weight": 0.6, "end": 0.7},
        {"type": "edges", "weight": 0.4, "image": "edges"},
    ]
    assert refine["controlnets"] == [{"image": "depth", "type": "depth", "weight": 0.5}]  # untouched
    assert image_keys(spec) == {"depth", "normal", "edges"}


def test_shipped_presets_load_by_name_and_build():
    presets = available_presets()
    assert {"texture-depth-edges", "stylize-depth-normal-refine"} <= set(presets)
    for name in presets:
        spec = build_job_spec(model="builtin:tiny", prompt="x", preset=name)
        assert spec["stages"] and spec["protocol"] == 1
    with pytest.raises(SpecError, match="no preset 'nope'") as err:
        load_preset("nope")
    assert "texture-depth-edges" in err.value.fix


@pytest.mark.parametrize("w, h", [(512, 512), (64, 2048), (1024, 576)])
def test_valid_sizes(w, h):
    assert validate_size(w, h) == (w, h)


@pytest.mark.parametrize("w, h, fix", [(500, 512, "width to 504"), (512, 4096, "height to 2048"),
                                       (32, 512, "width to 64"), (512.5, 512, "whole number")])
def test_bad_sizes_say_what_to_set(w, h, fix):
    with pytest.raises(SpecError) as err:
        validate_size(w, h)
    assert fix in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, ScenecastError)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": [{"type": "depht"}]}, "unknown type 'depht'"),
        ({"units": [{"type": "depth", "weight": 3}]}, "weight of ControlNet unit 1"),
        ({"units": [{"type": "depth", "start": 0.8, "end": 0.2}]}, "starts at 0.8"),
        ({"units": [{"type": "depth", "mode": "loud"}]}, "mode"),
        ({"units": [{"type": "other"}]}, "names no image"),
        ({"units": [{"type": "depth", "image": "a b"}]}, "bad image key"),
        ({"units": [{"type": "depth", "colour": 1}]}, "unknown fields: colour"),
        ({"units": [{"type": t} for t in ("depth", "normal", "edges", "segmentation", "lineart")]}, "at most 4"),
        ({"steps": 0}, "steps"),
        ({"guidance": 31}, "guidance"),
        ({"seed": -1}, "seed"),
        ({"scheduler": "fast"}, "scheduler"),
        ({"model": " "}, "no model"),
        ({"preset": {"stages": [{"type": "inpaint", "image": "color"}]}}, "no mask"),
        ({"preset": {"stages": [{"type": "img2img"}]}}, "first and has no image"),
        ({"preset": {"sampler": "x", "stages": []}}, "fields a job spec does not: sampler"),
    ],
)
def test_mistakes_are_caught_with_a_reason(kwargs, match):
    args = {"model": "m", "prompt": "p", **kwargs}
    with pytest.raises(SpecError, match=match):
        build_job_spec(**args)


def test_built_specs_validate_against_the_backends_definition():
    """The backend's pydantic JobSpec (backend/spec.py) accepts what we build, in its own venv."""
    if not BACKEND_PYTHON.exists():
        pytest.skip("backend venv (.venv) not built")
    specs = [
        build_job_spec(model="builtin:tiny", prompt="p", units=[{"type": "depth"}, {"type": "canny", "weight": 0.5}]),
        build_job_spec(model="builtin:tiny", prompt="p", preset=PRESET, units=[{"type": "segmentation", "end": 0.5}]),
    ] + [build_job_spec(model="builtin:tiny", prompt="p", seed=9, width=768, height=512, preset=name)
         for name in available_presets()]
    script = (
        "import json, sys\nfrom backend.spec import JobSpec\n"
        "for s in json.load(sys.stdin):\n    JobSpec.model_validate(s)\nprint('ok', flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(BACKEND_PYTHON), "-c", script], input=json.dumps(specs), capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=60)
    if "No module named 'pydantic'" in result.stderr:
        pytest.skip("pydantic is not installed in .venv")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


# -- reference images ---------------------------------------------------------------------------------


def test_reference_goes_to_every_stage_and_its_image_is_required():
    spec = build_job_spec(model="builtin:tiny", prompt="p", preset=PRESET, reference=[{"weight": 0.5}])
    assert [s["reference"] for s in spec["stages"]] == [[{"image": "reference", "weight": 0.5}]] * 2
    assert "reference" in image_keys(spec)
    plain = build_job_spec(model="builtin:tiny", prompt="p")
    assert "reference" not in plain["stages"][0] and "reference" not in image_keys(plain)


@pytest.mark.parametrize("ref, match", [
    ({"weight": 2.5}, "weight of reference image 1"),
    ({"weight": "1"}, "must be a number"),
    ({"start": 0.8, "end": 0.2}, "start must be less than end"),
    ({"strength": 1.0}, "unknown fields: strength"),
    ({"image": "bad key!"}, "bad image key"),
])
def test_bad_references_are_caught_with_a_reason(ref, match):
    with pytest.raises(SpecError, match=match):
        build_job_spec(model="m", prompt="p", reference=[ref])


def test_specs_with_references_validate_against_the_backends_definition():
    if not BACKEND_PYTHON.exists():
        pytest.skip("backend venv (.venv) not built")
    specs = [build_job_spec(model="builtin:tiny", prompt="p", preset=PRESET,
                            reference=[{"weight": 0.7, "start": 0.1, "end": 0.9}])]
    script = ("import json, sys\nfrom backend.spec import JobSpec\n"
              "for s in json.load(sys.stdin):\n    JobSpec.model_validate(s)\nprint('ok', flush=True)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(BACKEND_PYTHON), "-c", script], input=json.dumps(specs), capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


# -- VAE (issue 13)
def test_vae_is_a_job_field_and_replaces_the_presets() -> None:
    spec = build_job_spec(model="builtin:tiny", prompt="x", vae="  org/some-vae ")
    assert spec["vae"] == "org/some-vae"
    assert "vae" not in build_job_spec(model="builtin:tiny", prompt="x", vae="")
    preset = {"vae": "preset-vae", "stages": [{"type": "generate"}]}
    assert build_job_spec(model="builtin:tiny", prompt="x", preset=preset)["vae"] == "preset-vae"
    assert build_job_spec(model="builtin:tiny", prompt="x", preset=preset, vae="mine.safetensors")["vae"] == "mine.safetensors"
    with pytest.raises(SpecError, match="VAE"):
        build_job_spec(model="builtin:tiny", prompt="x", vae=3)  # type: ignore[arg-type]
