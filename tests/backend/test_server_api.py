"""The real server process, driven over HTTP and WebSocket as the add-on drives it (docs/protocol.md)."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from _server import gradient_png, shared_server, tiny_spec


@pytest.fixture(scope="module")
def server():
    return shared_server()


def test_health_says_version_protocol_device(server):
    status, body = server.json("GET", "/v1/health")
    assert status == 200
    assert body["status"] == "ok" and body["protocol"] == 1 and isinstance(body["protocol"], int)
    assert body["device"] == "cpu" and body["dtype"] == "float32" and body["version"]


def test_models_lists_the_builtin_tiny_model(server):
    status, body = server.json("GET", "/v1/models")
    assert status == 200
    ids = {m["id"]: m for m in body["models"]}
    assert ids["builtin:tiny"]["kind"] == "base" and ids["builtin:tiny"]["installed"] is True


def test_openapi_documents_every_endpoint_and_the_spec(server):
    status, _, raw = server.request("GET", "/openapi.json")
    doc = json.loads(raw)
    assert status == 200
    assert {"/v1/health", "/v1/models", "/v1/images", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel",
            "/v1/jobs/{job_id}/results/{n}", "/v1/jobs/{job_id}/record", "/v1/presets"} <= set(doc["paths"])
    assert "JobSpec" in doc["components"]["schemas"] and "ControlNetUnit" in doc["components"]["schemas"]


def test_presets_are_served(server):
    status, body = server.json("GET", "/v1/presets")
    assert status == 200
    assert "texture-depth-edges" in {p["name"] for p in body["presets"]}


def test_multipart_job_streams_stages_steps_previews_and_done(server):
    spec = tiny_spec(steps=4, preview_every=2)
    job_id = server.submit_ok(spec)
    events = server.events(job_id)
    types = [e["type"] for e, _ in events]
    assert types[0] == "queued" and types[-1] == "done"
    seqs = [e["seq"] for e, _ in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e for e, _ in events if e["type"] == "stage"] == [
        {"seq": events[types.index("stage")][0]["seq"], "type": "stage", "index": 0, "stage": "generate", "steps": 4}]
    steps = [e["step"] for e, _ in events if e["type"] == "step"]
    # Connecting after submit may miss nothing: past events are replayed (previews: only the latest).
    assert steps == [1, 2, 3, 4]
    previews = [(e, png) for e, png in events if e["type"] == "preview"]
    assert previews, "preview_every=2 gives previews"
    for event, png in previews:
        with Image.open(io.BytesIO(png)) as im:
            assert im.format == "PNG" and im.size == (event["width"], event["height"])
    done = events[-1][0]
    assert len(done["results"]) == 1 and done["results"][0]["width"] == 64

    # The result PNG: the pixels, the A1111 parameters and the JSON record in its text chunks.
    status, headers, raw = server.request("GET", done["results"][0]["url"])
    assert status == 200 and headers["content-type"] == "image/png"
    assert hashlib.sha256(raw).hexdigest() == done["results"][0]["sha256"]
    with Image.open(io.BytesIO(raw)) as im:
        assert im.size == (64, 64)
        params, record = im.text["parameters"], json.loads(im.text["scenecast"])
    assert params.startswith("a stone wall\n") and "Steps: 4, Sampler: Euler a" in params and "Seed: 7" in params
    assert 'ControlNet 0: "Module: depth' in params and "Model: builtin:tiny" in params
    assert record["spec"]["prompt"] == "a stone wall"
    assert record["inputs"]["depth"] == hashlib.sha256(gradient_png(64)).hexdigest()

    status, body = server.json("GET", f"/v1/jobs/{job_id}")
    assert status == 200 and body["status"] == "done" and body["record_url"] == f"/v1/jobs/{job_id}/record"
    status, rec = server.json("GET", body["record_url"])
    assert status == 200 and rec["results"][0]["sha256"] == done["results"][0]["sha256"]
    assert rec["backend"]["device"] == "cpu" and rec["backend"]["protocol"] == 1


def test_live_subscriber_gets_a_binary_frame_after_every_preview(server):
    job_id = server.submit_ok(tiny_spec(steps=6, preview_every=1))
    events = server.events(job_id)
    assert events[-1][0]["type"] == "done"
    # The helper asserts that each preview event is followed by a binary frame; a finished job's replay
    # holds exactly one preview (the latest), a live one up to one per step.
    assert 1 <= sum(e["type"] == "preview" for e, _ in events) <= 6
    replay = server.events(job_id)
    assert [e["type"] for e, _ in replay].count("preview") == 1
    assert [e for e, _ in replay][-1] == events[-1][0]


def test_uploaded_images_are_content_addressed_and_usable_from_a_json_submit(server):
    depth, edges = gradient_png(64, 3), gradient_png(64, 4)
    ids = []
    for data in (depth, edges, depth):
        status, _, raw = server.request("POST", "/v1/images", data, "image/png")
        assert status == 201
        ids.append(json.loads(raw)["id"])
    assert ids[0] == ids[2] == "sha256:" + hashlib.sha256(depth).hexdigest() and ids[0] != ids[1]
    assert (server.data / "images" / (ids[0].split(":")[1] + ".png")).read_bytes() == depth

    spec = tiny_spec(steps=2)
    spec["stages"][0]["controlnets"][0]["image"] = ids[0]
    spec["stages"][0]["controlnets"][1]["image"] = ids[1]
    status, body = server.json("POST", "/v1/jobs", spec)
    assert status == 202 and body["status"] == "queued"
    final = server.wait(body["id"])
    assert final["status"] == "done", final
    _, rec = server.json("GET", final["record_url"])
    assert rec["inputs"] == {ids[0]: ids[0].split(":")[1], ids[1]: ids[1].split(":")[1]}


def test_same_spec_and_seed_give_identical_pixels_over_the_server(server):
    pixels = []
    for _ in range(2):
        job_id = server.submit_ok(tiny_spec(steps=3, seed=11))
        final = server.wait(job_id)
        _, _, raw = server.request("GET", final["results"][0]["url"])
        pixels.append(np.asarray(Image.open(io.BytesIO(raw))))
    assert np.array_equal(pixels[0], pixels[1])
