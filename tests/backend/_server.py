"""A real ``python -m backend serve`` process for tests, and a tiny client for driving it.

Not a fixture file: pytest imports it from the test modules. One shared server (with a token, so every
test also exercises auth) is started on first use and stopped at interpreter exit; tests that need a
differently started server call :func:`start_server` themselves.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-" + uuid.uuid4().hex[:8]
START_TIMEOUT = 180.0
# The test box is 2 cores shared with other work: one torch thread is several times faster there than
# two threads contending (spin-waits), and keeps step times steady.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def gradient_png(size: int = 64, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.linspace(0, 255, size * size, dtype=np.float64).reshape(size, size)
    img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    return png(np.repeat(img[:, :, None], 3, axis=2))


def tiny_spec(steps: int = 4, size: int = 64, **over: Any) -> dict[str, Any]:
    spec = {"model": "builtin:tiny", "prompt": "a stone wall", "width": size, "height": size, "seed": 7,
            "steps": steps, "stages": [{"type": "generate", "controlnets": [
                {"image": "depth", "type": "depth", "weight": 1.0}, {"image": "edges", "type": "edges", "weight": 0.5}]}]}
    spec.update(over)
    return spec


def multipart(spec: dict[str, Any] | str, files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = bytearray()
    text = spec if isinstance(spec, str) else json.dumps(spec)
    out += f'--{boundary}\r\nContent-Disposition: form-data; name="spec"\r\n\r\n{text}\r\n'.encode()
    for name, data in files.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
                f"Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class Gate:
    """The test's side of one step gate (backend/testing/gates.py) on a server started with ``gates=True``.

    Put :attr:`mark` in a job's ``name`` (or prompt): the server holds that job right after step ``step``
    until :meth:`release` (or a cancel of the job). :meth:`wait_held` returns once the job is held.
    """

    def __init__(self, directory: Path, step: int, proc: subprocess.Popen) -> None:
        self.id, self.step, self._proc = uuid.uuid4().hex[:12], step, proc
        self.mark = f"[test-gate:{self.id}@{step}]"
        self._held, self._release = directory / f"{self.id}.held", directory / f"{self.id}.release"

    def wait_held(self, timeout: float = 120.0) -> None:
        """Until the server says the job is held (the timeout only bounds a failure)."""
        deadline = time.monotonic() + timeout
        while not self._held.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(f"no job reached gate {self.mark}")
            time.sleep(0.01)
        assert self._held.read_text() == str(self.step)

    def release(self) -> None:
        self._release.touch()


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, token: str | None, data: Path, log: Path,
                 gates: Path | None = None) -> None:
        self.proc, self.port, self.token, self.data, self.log, self.gates = proc, port, token, data, log, gates
        self.url = f"http://127.0.0.1:{port}"
        self._gates: list[Gate] = []

    def gate(self, step: int) -> Gate:
        """A new step gate; the server must have been started with ``gates=True``."""
        assert self.gates is not None, "start the server with gates=True"
        self._gates.append(Gate(self.gates, step, self.proc))
        return self._gates[-1]

    def release_gates(self) -> None:
        """Let every gated job go (after a test, so that one that failed holding a job blocks no other)."""
        while self._gates:
            self._gates.pop().release()

    # -- HTTP --------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None,
                token: str | None | bool = True) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if ctype:
            req.add_header("Content-Type", ctype)
        use = self.token if token is True else (token or None)
        if use:
            req.add_header("Authorization", f"Bearer {use}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        status, _, raw = self.request(method, path, data, "application/json" if data is not None else None, **kw)
        return status, json.loads(raw) if raw else None

    def submit(self, spec: dict[str, Any] | str, files: dict[str, bytes]) -> tuple[int, Any]:
        body, ctype = multipart(spec, files)
        status, _, raw = self.request("POST", "/v1/jobs", body, ctype)
        return status, json.loads(raw)

    def submit_ok(self, spec: dict[str, Any], files: dict[str, bytes] | None = None) -> str:
        if files is None:
            files = {"depth": gradient_png(spec["width"]), "edges": gradient_png(spec["width"], 1)}
        status, body = self.submit(spec, files)
        assert status == 202, body
        return body["id"]

    # -- WebSocket ---------------------------------------------------------------------------------
    def events(self, job_id: str, *, query_token: bool = False, on_event=None, timeout: float = 120.0
               ) -> list[tuple[dict[str, Any], bytes | None]]:
        """All events until the socket closes; each preview paired with the binary frame after it."""
        from websockets.sync.client import connect

        url = f"ws://127.0.0.1:{self.port}/v1/jobs/{job_id}/events"
        headers = None
        if self.token and query_token:
            url += f"?token={self.token}"
        elif self.token:
            headers = {"Authorization": f"Bearer {self.token}"}
        out: list[tuple[dict[str, Any], bytes | None]] = []
        with connect(url, additional_headers=headers, open_timeout=30, close_timeout=5) as ws:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                except Exception as exc:  # ConnectionClosed ends the stream
                    if type(exc).__name__.startswith("ConnectionClosed"):
                        break
                    raise
                assert isinstance(frame, str), "a binary frame arrived without a preview event before it"
                event = json.loads(frame)
                payload = None
                if event["type"] == "preview":
                    payload = ws.recv(timeout=30)
                    assert isinstance(payload, bytes), "a preview event must be followed by a binary frame"
                out.append((event, payload))
                if on_event:
                    on_event(event)
        return out

    def wait(self, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.json("GET", f"/v1/jobs/{job_id}")
            assert status == 200, body
            if body["status"] in ("done", "failed", "cancelled"):
                return body
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} did not finish")

    def healthy(self) -> bool:
        try:
            return self.json("GET", "/v1/health")[0] == 200
        except OSError:
            return False

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def server_env(data: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", SCENECAST_DATA=str(data), PYTHONDONTWRITEBYTECODE="1")
    env.pop("SCENECAST_TOKEN", None)
    env.pop("SCENECAST_TEST_GATES", None)  # only start_server(gates=True) allows them
    env.setdefault("XDG_CACHE_HOME", str(data / "cache"))
    return env


def start_server(token: str | None = None, args: tuple[str, ...] = (), data: Path | None = None,
                 gates: bool = False) -> Server:
    """A fresh server process; ``data`` reuses the data folder of an earlier one (a restart).

    ``gates``: with the test-only step gates on (``--test-gates``, allowed by ``SCENECAST_TEST_GATES=1``).
    """
    data = data or Path(tempfile.mkdtemp(prefix="scenecast-test-"))
    port = free_port()
    cmd = [sys.executable, "-m", "backend", "serve", "--port", str(port), "--device", "cpu", "--threads", "1", *args]
    if token:
        cmd += ["--token", token]
    env = server_env(data)
    gate_dir = data / "test-gates" if gates else None
    if gate_dir is not None:
        cmd += ["--test-gates", str(gate_dir)]
        env["SCENECAST_TEST_GATES"] = "1"
    log = data / "server.log"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    server = Server(proc, port, token, data, log, gate_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{server.log_tail()}")
        if server.healthy():
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the server did not become healthy in {START_TIMEOUT} s:\n{server.log_tail()}")


_shared: Server | None = None


def release_shared_gates() -> None:
    if _shared is not None:
        _shared.release_gates()


def shared_server() -> Server:
    """The one token-protected server most tests share (starting a backend imports torch: seconds).

    It has the test-only step gates on: jobs without a gate mark run exactly as in production.
    """
    global _shared
    if _shared is None or _shared.proc.poll() is not None:
        _shared = start_server(token=TOKEN, gates=True)
        atexit.register(_shared.stop)
    return _shared
