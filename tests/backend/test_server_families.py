"""Flow-matching families end to end through the real server on their tiny builtins: a ControlNet job
with previews, the result PNG and the record, and /v1/models listing the builtins."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from _server import shared_server, tiny_spec


@pytest.fixture(scope="module")
def server():
    return shared_server()


@pytest.mark.parametrize("model", ["builtin:tiny-flux", "builtin:tiny-flux-schnell", "builtin:tiny-zimage",
                                   "builtin:tiny-qwen"])
def test_flux_controlnet_job_runs_through_the_server(server, model: str) -> None:
    spec = tiny_spec(steps=3, model=model, preview_every=1)
    job_id = server.submit_ok(spec)
    events = server.events(job_id)
    types = [e["type"] for e, _ in events]
    assert types[-1] == "done", events[-1]
    # Previews after steps 1 and 2; a client that reads slower than they come gets the newer one only
    # (routes_events.py skips stale previews, never other events), so one or two arrive.
    assert types.count("step") == 3 and 1 <= types.count("preview") <= 2
    status, _, png = server.request("GET", f"/v1/jobs/{job_id}/results/0")
    assert status == 200
    image = np.asarray(Image.open(io.BytesIO(png)))
    assert image.shape == (64, 64, 3) and image.std() > 5
    _, body = server.json("GET", f"/v1/jobs/{job_id}")
    _, record = server.json("GET", body["record_url"])
    stage = record["resolved"]["stages"][0]
    assert stage["family"] == model.removeprefix("builtin:tiny-")
    expected = {"builtin:tiny-zimage": ["builtin:tiny-zimage-controlnet"] * 2,
                "builtin:tiny-qwen": ["builtin:tiny-qwen-controlnet"] * 2}.get(
        model, ["builtin:tiny-flux-controlnet-depth", "builtin:tiny-flux-controlnet-edges"])
    assert [u["model"] for u in stage["controlnets"]] == expected


def test_models_list_has_the_flow_builtins(server) -> None:
    _, body = server.json("GET", "/v1/models")
    by_id = {m["id"]: m for m in body["models"]}
    assert by_id["builtin:tiny-flux"]["family"] == "flux" and by_id["builtin:tiny-flux"]["kind"] == "base"
    assert by_id["builtin:tiny-flux-controlnet-union"]["kind"] == "controlnet"


def test_sdxl_union_job_runs_through_the_server(server) -> None:
    spec = tiny_spec(steps=2, model="builtin:tiny-sdxl")
    spec["stages"][0]["controlnets"][0]["type"] = "normal"
    spec["stages"][0]["controlnets"][1]["type"] = "segmentation"
    job_id = server.submit_ok(spec)
    final = server.wait(job_id)
    assert final["status"] == "done", final
    _, record = server.json("GET", final["record_url"])
    stage = record["resolved"]["stages"][0]
    assert stage["family"] == "sdxl"
    assert [u["model"] for u in stage["controlnets"]] == ["builtin:tiny-sdxl-controlnet-union"] * 2


# -- reference images ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "adapter"), [("builtin:tiny-sdxl", "builtin:tiny-ip-adapter"),
                                              ("builtin:tiny-flux", "builtin:tiny-flux-redux")])
def test_a_reference_job_runs_through_the_server(server, model: str, adapter: str) -> None:
    from _server import gradient_png

    spec = tiny_spec(steps=2, model=model)
    spec["stages"][0]["reference"] = [{"image": "style", "weight": 0.8}]
    job_id = server.submit_ok(spec, {"depth": gradient_png(64), "edges": gradient_png(64, 1),
                                     "style": gradient_png(48, 1)})
    assert [e["type"] for e, _ in server.events(job_id)][-1] == "done"
    _, body = server.json("GET", f"/v1/jobs/{job_id}")
    _, record = server.json("GET", body["record_url"])
    assert [r["model"] for r in record["resolved"]["stages"][0]["reference"]] == [adapter]


def test_a_reference_on_a_family_without_one_is_refused_at_submit(server) -> None:
    from _server import gradient_png

    spec = tiny_spec(steps=2, model="builtin:tiny-zimage")
    spec["stages"][0]["reference"] = [{"image": "style"}]
    status, body = server.submit(spec, {"depth": gradient_png(64), "edges": gradient_png(64, 1),
                                        "style": gradient_png(48)})
    assert status == 400 and "not supported for zimage" in str(body), body
