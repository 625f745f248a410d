"""Bad requests get a 4xx that names what is wrong and what to do; the server stays healthy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from _server import gradient_png, shared_server, tiny_spec


@pytest.fixture(scope="module")
def server():
    return shared_server()


def images():
    return {"depth": gradient_png(64), "edges": gradient_png(64, 1)}


def error_of(status_body):
    status, body = status_body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fix"}, body
    return status, body["error"]


@pytest.mark.parametrize("change, field", [
    ({"colour": "red"}, "colour: unknown field"),
    ({"width": 100000}, "width:"),
    ({"steps": "many"}, "steps:"),
    ({"stages": [{"type": "generate", "controlnets": [{"image": "depth", "type": "depth", "weight": 9}]}]},
     "stages[0].controlnets[0].weight:"),
    ({"stages": [{"type": "upscale"}]}, "stages[0]: `type` must be one of"),
])
def test_invalid_specs_are_422_naming_the_field(server, change, field):
    status, err = error_of(server.submit(tiny_spec(**change), images()))
    assert status == 422 and err["code"] == "invalid_spec" and field in err["message"] and err["fix"]


def test_json_submit_is_validated_the_same_way(server):
    status, err = error_of(server.json("POST", "/v1/jobs", tiny_spec(height=12)))
    assert status == 422 and err["message"].startswith("height:")


def test_malformed_json_is_400(server):
    status, err = error_of(server.submit("{not json", images()))
    assert status == 400 and err["code"] == "invalid_json"


def test_missing_image_part_is_400_naming_the_key(server):
    status, err = error_of(server.submit(tiny_spec(), {"depth": gradient_png()}))
    assert status == 400 and err["code"] == "missing_image" and "'edges'" in err["message"]


def test_unknown_uploaded_id_is_400(server):
    spec = tiny_spec()
    spec["stages"][0]["controlnets"][0]["image"] = "sha256:" + "0" * 64
    status, err = error_of(server.submit(spec, {"edges": gradient_png()}))
    assert status == 400 and "never uploaded" in err["message"]


def test_part_the_spec_does_not_name_is_400(server):
    status, err = error_of(server.submit(tiny_spec(), {**images(), "depht": gradient_png()}))
    assert status == 400 and "depht" in err["message"]


def test_bad_png_is_400(server):
    status, err = error_of(server.submit(tiny_spec(), {"depth": b"\x89PNG\r\n\x1a\n garbage", "edges": gradient_png()}))
    assert status == 400 and err["code"] == "bad_image" and "'depth'" in err["message"]
    status, err = error_of(server.submit(tiny_spec(), {"depth": b"GIF89a", "edges": gradient_png()}))
    assert status == 400 and "not a PNG" in err["message"]
    status, _, raw = server.request("POST", "/v1/images", b"not a png", "image/png")
    assert status == 400 and json.loads(raw)["error"]["code"] == "bad_image"


def test_unknown_model_is_refused_at_submit(server):
    status, err = error_of(server.submit(tiny_spec(model="nobody/no-such-model"), images()))
    assert status == 404 and err["code"] == "model_not_found" and "nobody/no-such-model" in err["message"]
    assert err["fix"]
    status, err = error_of(server.submit(tiny_spec(model="/tmp/weights.ckpt"), images()))
    assert 400 <= status < 500


def test_unknown_job_and_path_are_404_in_the_error_shape(server):
    assert error_of(server.json("GET", "/v1/jobs/nope"))[0] == 404
    assert error_of(server.json("POST", "/v1/jobs/nope/cancel"))[0] == 404
    assert error_of(server.json("GET", "/v1/nothing"))[0] == 404


def test_wrong_content_type_is_415(server):
    status, _, raw = server.request("POST", "/v1/jobs", b"spec", "text/plain")
    assert status == 415 and json.loads(raw)["error"]["fix"]


def test_a_job_failing_in_the_pipeline_becomes_a_failed_event_and_the_server_lives_on(server, tmp_path):
    # A .safetensors "LoRA" that is no LoRA: it passes the quick check at submit and fails when applied.
    bogus = tmp_path / "not-a-lora.safetensors"
    save_file({"junk": np.zeros((3, 3), np.float32)}, str(bogus))
    job_id = server.submit_ok(tiny_spec(steps=2, loras=[{"name": str(bogus), "weight": 1.0}]))
    events = server.events(job_id)
    last = events[-1][0]
    assert last["type"] == "failed", events
    assert last["error"]["message"] and last["error"]["fix"]
    assert server.json("GET", f"/v1/jobs/{job_id}")[1]["status"] == "failed"
    # ... and the next job runs normally.
    assert server.wait(server.submit_ok(tiny_spec(steps=2)))["status"] == "done"
    assert server.json("GET", "/v1/health")[0] == 200


def test_an_oversized_image_part_is_413_before_it_is_read(server):
    from backend.jobs.images import MAX_IMAGE_BYTES

    huge = b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES)
    status, err = error_of(server.submit(tiny_spec(), {"depth": huge, "edges": gradient_png(64, 1)}))
    assert status == 413 and err["code"] == "image_too_large" and "depth" in err["message"]
    assert server.healthy()


@pytest.mark.parametrize("change, field, hint", [
    ({"steps": "2"}, "steps:", "without quotes"),
    ({"steps": True}, "steps:", "true/false"),
    ({"seed": 2.5}, "seed:", "whole number"),
    ({"width": "512"}, "width:", "without quotes"),
    ({"guidance": "7.5"}, "guidance:", "without quotes"),
    ({"prompt": 12}, "prompt:", "string"),
])
def test_validation_is_strict_about_types(server, change, field, hint):
    """Documented as strict: a number in quotes or a boolean for a number is refused, naming the fix."""
    status, err = error_of(server.submit(tiny_spec(**change), images()))
    assert status == 422 and err["code"] == "invalid_spec" and err["message"].startswith(field), err
    assert hint in err["message"], err


@pytest.mark.parametrize("where", ["seed", "steps", "stages[0].controlnets[0].weight"])
def test_a_number_with_thousands_of_digits_is_422_naming_the_field(server, where):
    text = json.dumps(tiny_spec())
    if where == "seed":
        text = text.replace('"seed": 7', '"seed": ' + "9" * 5000)
    elif where == "steps":
        text = text.replace('"steps": 4', '"steps": -' + "1" * 5000)
    else:
        text = text.replace('"weight": 1.0', '"weight": ' + "1" * 5000)
    for status, err in (error_of(server.submit(text, images())), error_of(_json_submit(server, text))):
        assert status == 422 and err["code"] == "invalid_spec", err
        assert err["message"].startswith(where + ":") and "5000 digits" in err["message"], err
    assert server.healthy()


def _json_submit(server, text):
    status, _, raw = server.request("POST", "/v1/jobs", text.encode(), "application/json")
    return status, json.loads(raw)


def test_model_errors_do_not_tell_which_paths_exist_on_the_server(server, tmp_path):
    """A path that is no usable model answers the same whether or not something is there."""
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "junk.safetensors").write_bytes(b"")  # exists, but only a model file could tell it apart
    answers = set()
    for path in (tmp_path / "notes.txt", tmp_path / "folder", tmp_path / "junk.safetensors", tmp_path / "absent",
                 tmp_path / "absent.safetensors",
                 tmp_path / "absent" / "deeper"):
        status, err = error_of(server.submit(tiny_spec(model=str(path)), images()))
        assert status == 404 and err["code"] == "model_not_found", err
        assert "not found in the model folders" in err["message"], err
        answers.add((err["message"].replace(str(path), "<id>"), err["fix"]))
    assert len(answers) == 1, answers


def test_a_client_that_disconnects_mid_request_is_one_debug_line():
    """Dropping a connection is normal: no 'unhandled error', no traceback, one line at debug."""
    import socket
    import time

    from _server import multipart, start_server

    debug = start_server(args=("--log-level", "debug"))
    try:
        body, ctype = multipart(tiny_spec(), images())
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", debug.port)) as sock:
                sock.sendall((f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{debug.port}\r\nContent-Type: {ctype}\r\n"
                              f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: len(body) // 2])
        deadline = time.monotonic() + 30
        while debug.log_tail().count("disconnected") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert debug.healthy()
    finally:
        debug.stop()
    log = debug.log.read_text(errors="replace")
    assert "unhandled error" not in log and "Traceback" not in log and " ERROR " not in log, log[-3000:]
    lines = [line for line in log.splitlines() if "disconnected" in line]
    assert len(lines) == 2 and all(" DEBUG " in line for line in lines), lines
