"""Result files: atomic PNGs carrying A1111 parameters and the JSON record; same spec + seed, same pixels."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from backend.jobs.queue import JobQueue
from backend.jobs.outputs import build_record, parameters_text, write_results
from backend.models import ModelManager
from backend.pipelines import run_job
from backend.spec import JobSpec

torch = pytest.importorskip("torch")


def two_stage_spec(**over) -> JobSpec:
    data = {"model": "builtin:tiny", "prompt": "mossy wall, 4k", "negative_prompt": "blurry", "width": 64, "height": 64,
            "seed": 5, "steps": 3, "guidance": 6.0, "scheduler": "dpmpp_2m_karras",
            "stages": [{"type": "generate", "controlnets": [
                {"image": "depth", "type": "depth", "weight": 0.8, "end": 0.9}]},
                {"type": "img2img", "strength": 0.4, "steps": 2, "controlnets": []}]}
    data.update(over)
    return JobSpec.model_validate(data)


def test_parameters_text_is_a1111_style():
    text = parameters_text(two_stage_spec(), {})
    prompt, negative, fields = text.split("\n")
    assert prompt == "mossy wall, 4k" and negative == "Negative prompt: blurry"
    assert fields.startswith("Steps: 3, Sampler: DPM++ 2M Karras, CFG scale: 6, Seed: 5, Size: 64x64, "
                             "Model: builtin:tiny, ControlNet 0: \"Module: depth, Model: auto, Weight: 0.8, "
                             "Guidance Start: 0, Guidance End: 0.9, Control Mode: Balanced\"")
    assert 'Stages: "generate(3 steps' in fields and "img2img(2 steps, DPM++ 2M Karras, seed 5, strength 0.4)" in fields


def test_parameters_prefer_what_the_pipeline_resolved():
    info = {"stages": [{"seed": 99, "model": "org/resolved", "controlnets": [{"model": "builtin:tiny-controlnet-depth"}]}]}
    text = parameters_text(two_stage_spec(), info)
    assert "Seed: 99" in text and "Model: org/resolved" in text and "Model: builtin:tiny-controlnet-depth" in text


def test_results_are_written_atomically_with_their_record(tmp_path):
    spec = two_stage_spec()
    record = build_record("job1", spec, {"depth": "ab" * 32}, {"stages": []}, {"device": "cpu", "dtype": "float32"})
    images = [np.full((64, 64, 3), 7, np.uint8), np.zeros((64, 64, 3), np.uint8)]
    results = write_results(tmp_path, "r", images, parameters_text(spec, {}), record)
    assert sorted(os.listdir(tmp_path)) == ["r-0.png", "r-1.png", "r.json"]  # no temporary files left
    with Image.open(results[0]["path"]) as im:
        assert np.array_equal(np.asarray(im), images[0])
        embedded = json.loads(im.text["scenecast"])
    assert embedded["spec"] == spec.model_dump(mode="json") and embedded["inputs"] == {"depth": "ab" * 32}
    assert embedded["backend"]["device"] == "cpu" and embedded["backend"]["protocol"] == 1
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["sha256"] for r in saved["results"]] == [r["sha256"] for r in results]


def test_a_failed_write_leaves_no_file(tmp_path):
    spec = two_stage_spec()
    record = build_record("job1", spec, {}, {}, {"device": "cpu", "dtype": "float32"})
    with pytest.raises(ValueError):
        write_results(tmp_path, "r", [np.zeros((64, 64), np.float32)], "p", record)
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    torch.set_num_threads(1)
    q = JobQueue(run_job, ModelManager(device="cpu"), tmp_path_factory.mktemp("out"))
    q.start()
    yield q
    q.stop()


def run(queue: JobQueue, spec: JobSpec, depth: np.ndarray) -> np.ndarray:
    job = queue.submit(spec, {"depth": depth}, {"depth": "00"})
    assert job.finished.wait(120) and job.status == "done", job.error
    with Image.open(job.results[0]["path"]) as im:
        assert "Model: builtin:tiny-controlnet-depth" in im.text["parameters"]  # resolved by the pipeline
        return np.asarray(im).copy()


def test_same_spec_and_seed_give_identical_pixels(queue):
    depth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[:, None, None], (1, 64, 3))
    a = run(queue, two_stage_spec(), depth)
    b = run(queue, two_stage_spec(), depth)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, run(queue, two_stage_spec(seed=6), depth)), "the seed must matter"
    assert not np.array_equal(a, run(queue, two_stage_spec(), 255 - depth)), "the control image must matter"
