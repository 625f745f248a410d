"""A token, once set, is demanded on every request; off loopback the server will not start without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from _server import ROOT, free_port, shared_server, tiny_spec


@pytest.fixture(scope="module")
def server():
    return shared_server()


@pytest.mark.parametrize("method, path", [("GET", "/v1/health"), ("GET", "/v1/models"), ("POST", "/v1/jobs"),
                                          ("POST", "/v1/images"), ("GET", "/v1/jobs/x"), ("GET", "/openapi.json")])
@pytest.mark.parametrize("token", [False, "wrong-token"])
def test_every_endpoint_demands_the_token(server, method, path, token):
    status, headers, raw = server.request(method, path, b"" if method == "POST" else None, token=token)
    assert status == 401
    assert json.loads(raw)["error"]["code"] == "unauthorized" and headers.get("www-authenticate") == "Bearer"


def test_websocket_demands_the_token_by_header_or_query(server):
    job_id = server.submit_ok(tiny_spec(steps=1))
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{server.port}/v1/jobs/{job_id}/events")
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{server.port}/v1/jobs/{job_id}/events?token=wrong")
    assert server.events(job_id, query_token=True)[-1][0]["type"] == "done"


def test_unknown_job_websocket_is_404(server):
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{server.port}/v1/jobs/nope/events?token={server.token}")
    assert info.value.response.status_code == 404


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_serving_off_loopback_without_a_token_is_refused(host):
    env = {k: v for k, v in os.environ.items() if k != "SCENECAST_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "backend", "serve", "--host", host, "--port", "1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "refusing to listen" in proc.stderr and "--token" in proc.stderr


def test_the_token_never_reaches_the_log(server):
    job_id = server.submit_ok(tiny_spec(steps=1))
    assert server.events(job_id, query_token=True)[-1][0]["type"] == "done"
    log = server.log.read_text(errors="replace")
    assert "token=<redacted>" in log and server.token not in log


def test_no_token_reaches_a_debug_log_either():
    """At --log-level debug uvicorn and websockets log handshakes and headers: the token must not show."""
    from _server import start_server

    debug = start_server(token=TOKEN_DEBUG, args=("--log-level", "debug"))
    try:
        job_id = debug.submit_ok(tiny_spec(steps=1))
        assert debug.events(job_id)[-1][0]["type"] == "done"  # token in the Authorization header
        assert debug.events(job_id, query_token=True)[-1][0]["type"] == "done"  # token in the query string
        with pytest.raises(InvalidStatus):
            connect(f"ws://127.0.0.1:{debug.port}/v1/jobs/{job_id}/events?token=wrong-{TOKEN_DEBUG}")
    finally:
        debug.stop()
    log = debug.log.read_text(errors="replace")
    assert " DEBUG " in log and "<redacted>" in log
    assert TOKEN_DEBUG not in log, [line for line in log.splitlines() if TOKEN_DEBUG in line][:5]


TOKEN_DEBUG = "debug-secret-4f1c9a"


@pytest.mark.parametrize("token", ["sëcret✓", "tab\tinside", " padded"])
def test_a_token_that_can_never_match_is_refused_at_start(token):
    env = {k: v for k, v in os.environ.items() if k != "SCENECAST_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "backend", "serve", "--port", str(free_port()), "--token", token],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "token" in proc.stderr and "fix:" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "backend", "serve", "--port", str(free_port())], cwd=ROOT,
                          env={**env, "SCENECAST_TOKEN": token}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "SCENECAST_TOKEN" in proc.stderr, proc.stderr


@pytest.mark.parametrize("line", [
    "GET /v1/jobs/x/events?token=SECRET&x=1 HTTP/1.1", "< authorization: Bearer SECRET",
    "[(b'authorization', b'Bearer SECRET'), (b'host', b'x')]", "Authorization: Basic SECRET",
    "{'authorization': 'SECRET'}", "a message that quotes the token SECRET itself",
])
def test_every_form_of_a_token_in_a_log_line_is_redacted(line):
    from backend.logs import redact

    out = redact(line.replace("SECRET", "s3cr3t-t0ken"), ["s3cr3t-t0ken"])
    assert "s3cr3t" not in out and "<redacted>" in out
    assert redact("authorization header missing; nothing here", []) == "authorization header missing; nothing here"
