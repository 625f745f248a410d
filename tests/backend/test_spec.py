"""The job spec refuses bad input with messages that name the field, and the shipped docs match it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.spec import JobSpec, apply_preset, list_presets, validation_message

ROOT = Path(__file__).resolve().parents[2]
CONVENTIONAL_KEYS = {"depth", "normal", "edges", "segmentation", "color", "mask"}


def base(**over) -> dict:
    spec = {"model": "builtin:tiny", "prompt": "p", "width": 64, "height": 64,
            "stages": [{"type": "generate", "controlnets": [{"image": "depth", "type": "depth"}]}]}
    spec.update(over)
    return spec


def message(data: dict) -> str:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(data)
    return validation_message(info.value.errors())


def test_valid_spec_lists_its_image_keys():
    spec = JobSpec.model_validate(base(stages=[
        {"type": "generate", "controlnets": [{"image": "depth", "type": "depth"}, {"image": "edges", "type": "edges"}]},
        {"type": "inpaint", "mask": "mask", "controlnets": [{"image": "depth", "type": "depth"}]}]))
    assert spec.image_keys() == {"depth", "edges", "mask"}


def test_unknown_field_is_named_with_its_path():
    assert message(base(stages=[{"type": "generate", "colour": 1}])) == "stages[0].colour: unknown field"
    assert "sampler: unknown field" in message(base(sampler="euler"))


def test_absurd_size_names_the_field_and_limit():
    msg = message(base(width=100000))
    assert msg.startswith("width:") and "2048" in msg and "100000" in msg
    assert message(base(height=100)).startswith("height:")  # not a multiple of 8


def test_wrong_type_names_the_field():
    msg = message(base(steps="many"))
    assert msg.startswith("steps:") and "'many'" in msg
    assert message(base(stages=[{"type": "generate", "controlnets": [{"image": "d", "type": "depth", "weight": "x"}]}])) \
        .startswith("stages[0].controlnets[0].weight:")


def test_unknown_stage_type_lists_the_known_ones():
    assert "generate, img2img, inpaint" in message(base(stages=[{"type": "upscale"}]))


def test_cross_field_rules():
    assert "start (0.6) must be less than end (0.5)" in message(
        base(stages=[{"type": "generate", "controlnets": [{"image": "d", "type": "depth", "start": 0.6, "end": 0.5}]}]))
    assert "needs an `image`" in message(base(stages=[{"type": "img2img"}]))
    assert "stages[0] has no `model`" in message(base(model=None))
    assert "protocol 9 is not supported" in message(base(protocol=9))


def test_missing_stages_says_required():
    assert message({"model": "m", "prompt": "p"}) == "stages: required field is missing"


def test_stage_overrides_fall_back_to_job_then_defaults():
    spec = JobSpec.model_validate(base(steps=7, stages=[{"type": "generate", "seed": 5}]))
    stage = spec.stages[0]
    assert (spec.resolved(stage, "seed"), spec.resolved(stage, "steps"), spec.resolved(stage, "guidance")) == (5, 7, 7.5)


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_presets_are_valid_partial_specs_with_conventional_keys(name):
    preset = list_presets()[name]
    assert preset.get("description")
    spec = JobSpec.model_validate(apply_preset(preset, {"model": "builtin:tiny", "prompt": "stone"}))
    assert spec.image_keys() and spec.image_keys() <= CONVENTIONAL_KEYS
    assert all(u.type != "other" for s in spec.stages for u in s.controlnets)


def test_the_named_presets_exist():
    assert {"texture-depth-edges", "stylize-depth-normal-refine"} <= set(list_presets())


def test_spec_file_fields_override_the_preset():
    merged = apply_preset(list_presets()["texture-depth-edges"], {"preset": "x", "steps": 3, "model": "m", "prompt": "p"})
    assert merged["steps"] == 3 and "preset" not in merged and "description" not in merged


def test_committed_schema_docs_are_current(tmp_path):
    subprocess.run([sys.executable, "-m", "backend", "schema", "--docs", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    for name in ("job-spec.schema.json", "spec.md"):
        assert (tmp_path / name).read_text() == (ROOT / "docs" / name).read_text(), \
            f"docs/{name} is stale: run `python -m backend schema`"
    schema = json.loads((tmp_path / "job-spec.schema.json").read_text())
    assert schema["additionalProperties"] is False and "stages" in schema["required"]
