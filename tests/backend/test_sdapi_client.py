"""The A1111 adapter driven by a real A1111 client (``sd-backend-client`` from PyPI) against a real server.

The server is ``python -m backend serve`` on builtin:tiny with a token; the client authenticates the way
it does against ``--api-auth`` (HTTP Basic, the token as password). Raw-HTTP cases cover the shapes the
client never sends (refused fields, Bearer auth).
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from _server import TOKEN, gradient_png, shared_server

sdbc = pytest.importorskip("sd_backend_client", reason="sd-backend-client is in backend/requirements.txt")
from sd_backend_client import (  # noqa: E402
    A1111Webservice,
    AuthError,
    ControlNetModel,
    ControlNetUnit,
    DiffusionRequestBody,
    GenerationError,
    ServerError,
    connect_to_backend,
)

DEPTH = "builtin:tiny-controlnet-depth"


@pytest.fixture(scope="module")
def server():  # noqa: ANN201
    return shared_server()


@pytest.fixture(scope="module")
def client(server) -> A1111Webservice:  # noqa: ANN001
    return A1111Webservice(server.url, credentials_provider=lambda: ("artist", TOKEN), generation_timeout=300)


def depth_image(size: int = 64) -> Image.Image:
    return Image.open(io.BytesIO(gradient_png(size))).convert("RGB")


def body(**over: object) -> DiffusionRequestBody:
    fields = {"sd_model_name": "builtin:tiny", "prompt": "a stone wall", "steps": 2, "width": 64, "height": 64, "seed": 7}
    fields.update(over)
    return DiffusionRequestBody(**fields)


def rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_connect_to_backend_recognises_the_server_as_a_webui(server) -> None:  # noqa: ANN001
    backend = connect_to_backend(server.url, credentials_provider=lambda: ("artist", TOKEN))
    assert isinstance(backend, A1111Webservice)
    listed = server.json("GET", "/v1/models")[1]["models"]
    bases = sorted(m["id"] for m in listed if m["kind"] == "base" and m.get("installed"))
    assert sorted(m.name for m in backend.list_checkpoints()) == bases and "builtin:tiny" in bases
    assert DEPTH in [m.full_model_name for m in backend.list_controlnet_models()]
    assert "Euler a" in [s.display_name for s in backend.list_samplers()]


def test_wrong_credentials_are_refused(server) -> None:  # noqa: ANN001
    with pytest.raises(AuthError):
        A1111Webservice(server.url, credentials_provider=lambda: ("artist", "wrong")).get_models()


def test_txt2img_with_controlnet_matches_the_same_job_sent_to_v1_jobs(client, server) -> None:  # noqa: ANN001
    unit = ControlNetUnit(image=depth_image(), model=ControlNetModel(DEPTH), control_strength=0.8,
                          control_start=0.0, control_end=1.0)
    result = client.txt2img(body(batch_size=2, controlnet_units=[unit]))
    assert [im.size for im in result["images"]] == [(64, 64), (64, 64)]
    assert result["info"].all_seeds == [7, 8] and result["info"].sampler_name == "Euler a"
    # The same job through our own API: identical pixels, so seed, steps, CFG, sampler and unit all mapped.
    spec = {"model": "builtin:tiny", "prompt": "a stone wall", "width": 64, "height": 64, "seed": 8, "steps": 2,
            "guidance": 7.0, "scheduler": "euler_a", "stages": [{"type": "generate", "controlnets": [
                {"image": "d", "model": DEPTH, "type": "depth", "weight": 0.8, "start": 0.0, "end": 1.0}]}]}
    job = server.wait(server.submit_ok(spec, {"d": gradient_png(64)}))
    status, _, data = server.request("GET", job["results"][0]["url"])
    assert status == 200
    assert np.array_equal(rgb(result["images"][1]), rgb(Image.open(io.BytesIO(data))))
    assert not np.array_equal(rgb(result["images"][0]), rgb(result["images"][1]))  # seeds 7 and 8 differ


def test_img2img_matches_the_same_job_sent_to_v1_jobs(client, server) -> None:  # noqa: ANN001
    source = depth_image()
    result = client.img2img(source, None, body(denoising_strength=0.5, sampler="dpmpp_2m", scheduler="karras", seed=11))
    assert json.loads(result["info"].model_dump_json())["denoising_strength"] == 0.5
    spec = {"model": "builtin:tiny", "prompt": "a stone wall", "width": 64, "height": 64, "seed": 11, "steps": 2,
            "guidance": 7.0, "scheduler": "dpmpp_2m_karras", "stages": [{"type": "img2img", "image": "i", "strength": 0.5}]}
    job = server.wait(server.submit_ok(spec, {"i": gradient_png(64)}))
    status, _, data = server.request("GET", job["results"][0]["url"])
    assert status == 200 and np.array_equal(rgb(result["images"][0]), rgb(Image.open(io.BytesIO(data))))


def test_inpaint_keeps_what_the_mask_keeps(client) -> None:  # noqa: ANN001
    source = Image.fromarray(np.full((64, 64, 3), (180, 90, 40), np.uint8))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 24, 64))  # repaint the left 24 columns
    result = client.img2img(source, mask, body(denoising_strength=0.9, mask_blur=2))
    out = rgb(result["images"][0])
    assert np.array_equal(out[:, 40:], np.asarray(source)[:, 40:])  # beyond the blurred edge: the source, exactly
    assert not np.array_equal(out[:, :16], np.asarray(source)[:, :16])


def test_progress_and_interrupt_stop_the_request(client, server) -> None:  # noqa: ANN001
    gate = server.gate(1)  # the batch's first job waits after step 1 of 4 (A1111 requests carry no name: the prompt)
    handle = client.submit_txt2img(body(prompt=f"a stone wall {gate.mark}", steps=4, batch_size=2))
    gate.wait_held()
    seen = client.progress_check()
    assert seen.state.sampling_step == 1 and seen.state.sampling_steps == 4 and seen.state.job_count == 2
    assert seen.state.job_no == 0 and seen.progress == pytest.approx(0.125)  # step 1 of 4, job 1 of 2
    job_id = seen.state.job[len("task("):-1]
    assert handle.cancel()  # never released: only the interrupt can end the held job
    with pytest.raises(GenerationError):
        handle.wait(timeout=120)
    status, job = server.json("GET", f"/v1/jobs/{job_id}")
    assert status == 200 and job["status"] == "cancelled" and job["step"] == 1  # interrupted at step 1 of 4
    health = server.json("GET", "/v1/health")[1]
    assert health["queue"] == 0 and health["running"] is None  # the batch's second job went with it


def test_selected_checkpoint_is_used_when_a_request_names_none(server) -> None:  # noqa: ANN001
    status, answer = server.json("POST", "/sdapi/v1/options", {"sd_model_checkpoint": "nowhere/missing-model"})
    assert status == 404, answer
    assert server.json("POST", "/sdapi/v1/options", {"sd_model_checkpoint": "builtin:tiny"})[0] == 200
    assert server.json("GET", "/sdapi/v1/options")[1]["sd_model_checkpoint"] == "builtin:tiny"
    status, answer = server.json("POST", "/sdapi/v1/txt2img", {"prompt": "a wall", "steps": 1, "width": 64, "height": 64,
                                                               "seed": 3})
    assert status == 200, answer
    png_bytes = base64.b64decode(answer["images"][0])
    assert "Seed: 3" in Image.open(io.BytesIO(png_bytes)).info["parameters"]  # A1111 PNG info, as A1111 writes it
    assert json.loads(answer["info"])["all_seeds"] == [3]


@pytest.mark.parametrize("extra,named", [
    ({"restore_faces": True}, "restore_faces"),
    ({"enable_hr": True, "hr_scale": 2}, "enable_hr"),
    ({"alwayson_scripts": {"controlnet": {"args": [{"module": "depth_midas", "model": DEPTH,
                                                    "image": base64.b64encode(gradient_png(64)).decode()}]}}},
     "alwayson_scripts.controlnet.args[0].module"),
    ({"alwayson_scripts": {"controlnet": {"args": [{"module": "none", "model": DEPTH, "guidance_start": 0.5,
                                                    "guidance_end": 0.5,
                                                    "image": base64.b64encode(gradient_png(64)).decode()}]}}},
     "alwayson_scripts.controlnet.args[0]"),
    ({"steps": 500}, "steps"),
    ({"cfg_scale": 99}, "cfg_scale"),
])
def test_refused_fields_answer_422_naming_the_a1111_field(server, extra: dict, named: str) -> None:  # noqa: ANN001
    payload = {"prompt": "a wall", "steps": 1, "width": 64, "height": 64, "seed": 1,
               "override_settings": {"sd_model_checkpoint": "builtin:tiny"}, **extra}
    status, answer = server.json("POST", "/sdapi/v1/txt2img", payload)
    assert status == 422, answer
    assert answer["error"]["message"].startswith(named) and answer["error"]["fix"]


def test_sdapi_needs_the_token_like_every_route(server) -> None:  # noqa: ANN001
    assert server.json("GET", "/sdapi/v1/sd-models", token=False)[0] == 401
    assert server.json("GET", "/controlnet/model_list", token="nope")[0] == 401
    assert server.json("GET", "/sdapi/v1/progress")[0] == 200  # Bearer works too


def test_client_error_from_the_client_package_carries_our_message(client) -> None:  # noqa: ANN001
    with pytest.raises(ServerError) as err:
        client.txt2img(body(tiling=True))
    assert err.value.status_code == 422 and "tiling" in str(err.value)


def test_image_limits_apply(server) -> None:  # noqa: ANN001
    huge = Image.new("L", (4097, 4097))
    buf = io.BytesIO()
    huge.save(buf, format="PNG")
    status, answer = server.json("POST", "/sdapi/v1/img2img", {
        "prompt": "x", "init_images": [base64.b64encode(buf.getvalue()).decode()], "width": 64, "height": 64,
        "override_settings": {"sd_model_checkpoint": "builtin:tiny"}})
    assert status == 422 and answer["error"]["message"].startswith("init_images[0]") and "pixels" in answer["error"]["message"]


def test_a_token_less_server_refuses_web_pages_on_sdapi_too() -> None:
    """The origin guard sits in front of the adapter: a page's cross-site POST never reaches the queue."""
    from _server import start_server

    local = start_server(token=None)
    try:
        payload = json.dumps({"prompt": "x", "steps": 1, "width": 64, "height": 64,
                              "override_settings": {"sd_model_checkpoint": "builtin:tiny"}}).encode()
        import urllib.error
        import urllib.request

        req = urllib.request.Request(local.url + "/sdapi/v1/txt2img", data=payload, method="POST",
                                     headers={"Content-Type": "application/json", "Origin": "https://evil.example"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 403
        assert local.json("GET", "/v1/health")[1]["queue"] == 0
        assert local.json("GET", "/sdapi/v1/sd-models", token=False)[0] == 200  # a local script needs nothing
    finally:
        local.stop()
