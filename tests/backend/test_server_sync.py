"""A texture_sync job over HTTP: the correspondence part is taken as raw bytes (not an image), checked
before queueing, handed to the stage and hashed into the record (docs/protocol.md, "Correspondence part")."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest

from _server import ROOT, TOKEN, png, shared_server
from sync_scene import correspondence

sys.path.insert(0, str(ROOT))
from addon.core.client import BackendClient  # noqa: E402

VIEWS, SIZE = 3, 64


@pytest.fixture(scope="module")
def server():
    return shared_server()


@pytest.fixture(scope="module")
def part() -> bytes:
    return correspondence(VIEWS, SIZE, texture=32)[0]


def sync_spec(views: int = VIEWS, fraction: float = 0.8) -> dict:
    return {"model": "builtin:tiny", "prompt": "a crate", "width": SIZE, "height": SIZE, "steps": 3, "seed": 5,
            "stages": [{"type": "texture_sync", "correspondence": "corr", "sync_fraction": fraction,
                        "texture_width": 64, "views": [{"controlnets": [{"image": f"depth{v}", "type": "depth"}]}
                                                       for v in range(views)]}]}


def depth_images(views: int = VIEWS) -> dict[str, np.ndarray]:
    ramp = np.tile(np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :, None], (SIZE, 1, 3))
    return {f"depth{v}": np.roll(ramp, 7 * v, axis=1) for v in range(views)}


def test_a_texture_sync_job_runs_over_http_and_records_its_correspondence(server, part):
    client = BackendClient(server.url, token=TOKEN)
    job = client.submit(sync_spec(), {**depth_images(), "corr": part})
    images = client.wait_pixels(job, timeout=300)
    assert len(images) == VIEWS + 2  # the views, then the texture and weight strips
    assert all(im.shape == (SIZE, SIZE, 3) for im in images[:VIEWS])
    assert images[VIEWS].shape[1] == 64
    assert server.wait(job)["status"] == "done"
    code, record = server.json("GET", f"/v1/jobs/{job}/record")
    assert code == 200, record
    assert record["inputs"]["corr"] == hashlib.sha256(part).hexdigest()
    assert record["spec"]["stages"][0]["type"] == "texture_sync"


def test_a_correspondence_that_does_not_fit_the_stage_is_refused_before_queueing(server, part):
    files = {k: png(v) for k, v in depth_images(2).items()}  # _server.multipart labels every part image/png
    code, answer = server.submit(sync_spec(views=2), {**files, "corr": part})  # built for 3 views, not 2
    assert code == 400, answer
    assert answer["error"]["code"] == "bad_correspondence"
    assert "3 views but the stage lists 2" in answer["error"]["message"]
    code, answer = server.submit(sync_spec(views=2), files)  # no correspondence part at all
    assert code == 400 and answer["error"]["code"] == "missing_correspondence", answer
    code, answer = server.submit(sync_spec(views=2), {**files, "corr": b"not one"})
    assert code == 400 and "SCCR" in answer["error"]["message"], answer
    code, answer = server.submit(sync_spec(views=2), {**files, "corr": part, "extra": files["depth0"]})
    assert code == 400 and answer["error"]["code"] == "unexpected_part", answer
    assert "corr" in answer["error"]["fix"]  # the correspondence is one of the parts the spec names


def test_a_texture_sync_job_on_a_flow_transformer_runs_over_http(server, part):
    """builtin:tiny-flux (FLUX.1 dev, 2x2-packed tokens): the views, the texture and its weight come back and the
    record says the steps were fused (the flow path had no sync hook before: AttributeError init_noise_sigma)."""
    client = BackendClient(server.url, token=TOKEN)
    job = client.submit({**sync_spec(), "model": "builtin:tiny-flux"}, {**depth_images(), "corr": part})
    images = client.wait_pixels(job, timeout=300)
    assert len(images) == VIEWS + 2
    assert all(im.shape == (SIZE, SIZE, 3) for im in images[:VIEWS])
    assert images[VIEWS].shape[1] == 64 and images[VIEWS + 1].shape[1] == 64 and images[VIEWS + 1].max() == 255
    assert server.wait(job)["status"] == "done"
    code, record = server.json("GET", f"/v1/jobs/{job}/record")
    assert code == 200, record
    stage = record["resolved"]["stages"][0]
    assert stage["family"] == "flux" and stage["sync"]["fused_steps"] == 2 and stage["sync"]["views"] == VIEWS


def test_cross_view_attention_on_a_flow_model_is_refused_at_submit(server, part):
    files = {k: png(v) for k, v in depth_images().items()}
    spec = {**sync_spec(), "model": "builtin:tiny-flux"}
    spec["stages"][0]["cross_view_attention"] = True
    code, answer = server.submit(spec, {**files, "corr": part})
    assert code == 400, answer
    assert answer["error"]["code"] == "unsupported_model"
    assert "cross_view_attention" in answer["error"]["message"] and "false" in answer["error"]["fix"]


@pytest.mark.parametrize(("model", "adapter"), [("builtin:tiny", "builtin:tiny-ip-adapter"),
                                              ("builtin:tiny-flux", "builtin:tiny-flux-redux")])
def test_a_texture_sync_job_with_a_reference_image_runs_over_http(server, part, model, adapter):
    """The reference arrives as one more image part; the views differ from the same job without it."""
    client = BackendClient(server.url, token=TOKEN)
    style = np.random.default_rng(7).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    plain_spec = {**sync_spec(), "model": model}
    spec = {**plain_spec, "stages": [{**plain_spec["stages"][0], "reference": [{"image": "style", "weight": 1.0}]}]}
    job = client.submit(spec, {**depth_images(), "corr": part, "style": style})
    styled = client.wait_pixels(job, timeout=300)
    plain = client.wait_pixels(client.submit(plain_spec, {**depth_images(), "corr": part}), timeout=300)
    assert len(styled) == VIEWS + 2
    assert all(np.abs(a.astype(int) - b.astype(int)).mean() > 0.1 for a, b in zip(styled[:VIEWS], plain[:VIEWS]))
    code, record = server.json("GET", f"/v1/jobs/{job}/record")
    assert code == 200, record
    assert [r["model"] for r in record["resolved"]["stages"][0]["reference"]] == [adapter]


def test_a_texture_sync_reference_on_a_family_without_one_is_refused_at_submit(server, part):
    files = {k: png(v) for k, v in depth_images().items()}
    spec = {**sync_spec(), "model": "builtin:tiny-zimage"}
    spec["stages"][0]["reference"] = [{"image": "style"}]
    code, answer = server.submit(spec, {**files, "corr": part, "style": files["depth0"]})
    assert code == 400, answer
    assert "not supported for zimage" in answer["error"]["message"]
    assert "flux (Redux)" in answer["error"]["fix"]
