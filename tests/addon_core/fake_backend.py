"""A protocol-1 test double of the backend on the stdlib http.server, for the client's unit tests.

It exists for fault injection only — what the real backend (tests/addon_core/real_backend.py) cannot
be made to do on cue: fail a job, break an event stream, die mid-job, wait for the test between steps.
It follows docs/protocol.md (endpoints, error bodies, auth, ``seq`` from 1, record ``inputs`` as
key -> sha256, cancel of a finished job answers 200 with its status, events with a binary frame after
each preview), and ``test_client.py`` compares the shapes of its answers with the real server's.
Scripted jobs instead of diffusion; the spec's ``name`` picks the script: "ok" (3 steps, a preview
every ``preview_every`` steps but the last, 1 result), "fail", "gated" (runs a step only when the
test calls ``release``; a cancel ends it), "drop" (the event stream breaks at step 2, the job goes on),
"hold" (after ``ready`` it writes its PNG only when the test calls ``release_png``), "hold_fail" (the
same, then fails with ``output_error`` as a backend whose disk is full), "hold_evicted" (like "hold",
but its pixels leave memory at once, as the backend's budget drops old ones: a raw request before the
PNG is written answers 409 and sets ``refused_raw``).
``FakeBackend(raw_results=True)`` offers raw pixels (protocol 1.1): a result is served raw from
``ready`` on when asked for it, as PNG from ``done`` on; ``ready_events=False`` is a protocol-1.0
backend, which never sends ``ready``.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from addon.core.pixels import MEDIA_TYPE as PIXELS, encode_pixels
from addon.core.png import encode_png

import ws_server as ws

TERMINAL = ("done", "failed", "cancelled")


class FakeJob:
    def __init__(self, job_id: str, spec: dict, images: dict[str, bytes], ready_events: bool = True):
        self.id = job_id
        self.ready_events = ready_events
        self.outputs: list[np.ndarray] | None = None  # the result pixels, from `ready` on
        self.png_gate = threading.Event()  # "hold"/"hold_fail": set by release_png()
        self.refused_raw = threading.Event()  # "hold_evicted": a raw request got 409
        self.spec = spec
        self.images = images
        self.events: list[tuple[dict, bytes | None]] = []
        self.cond = threading.Condition()
        self.status = "queued"
        self.step = 0
        self.steps = 3
        self.error = None
        self.cancel_requested = threading.Event()
        self.released = 0  # "gated": the steps the test has let run (see release())
        self.results: list[bytes] = []
        self.created, self.started, self.finished = time.time(), None, None

    def emit(self, data: dict, png: bytes | None = None) -> None:
        with self.cond:
            data = {"seq": len(self.events) + 1, **data}  # protocol: seq starts at 1
            self.events.append((data, png))
            if data["type"] in TERMINAL:
                self.status = data["type"]
                self.finished = time.time()
            elif data["type"] == "started":
                self.status = "running"
                self.started = time.time()
            self.cond.notify_all()

    def release(self, steps: int = 1) -> None:
        """Let a "gated" job run ``steps`` more steps (it waits for this, or a cancel, before each)."""
        with self.cond:
            self.released += steps
            self.cond.notify_all()

    def release_png(self) -> None:
        """Let a "hold"/"hold_fail" job write its PNG (or fail to) and end."""
        self.png_gate.set()

    def request_cancel(self) -> None:
        with self.cond:
            self.cancel_requested.set()
            self.cond.notify_all()

    def _may_run(self, step: int) -> bool:
        """Whether step ``step`` may run: False once cancelled; a gated job waits for the test."""
        with self.cond:
            if self.spec.get("name") == "gated":
                self.cond.wait_for(lambda: self.released >= step or self.cancel_requested.is_set())
            return not self.cancel_requested.is_set()

    def run(self) -> None:
        script = self.spec.get("name") or "ok"
        self.emit({"type": "queued", "position": 0})
        self.emit({"type": "started"})
        self.steps = steps = 100 if script == "gated" else 3
        self.emit({"type": "stage", "index": 0, "stage": "generate", "steps": steps})
        for step in range(1, steps + 1):
            if not self._may_run(step):
                self.emit({"type": "cancelled"})
                return
            self.step = step
            self.emit({"type": "step", "stage": 0, "step": step, "steps": steps})
            every = int(self.spec.get("preview_every") or 0)
            if every and step % every == 0 and step < steps:  # as the real pipeline: none at the last step
                preview = encode_png(np.full((8, 8, 3), step * 40, np.uint8))
                self.emit({"type": "preview", "stage": 0, "step": step, "width": 8, "height": 8}, preview)
        if script == "fail":
            self.error = {"code": "out_of_memory", "message": "CUDA out of memory", "fix": "lower the size"}
            self.emit({"type": "failed", "error": self.error})
            return
        image = np.full((8, 8, 3), 200, np.uint8)
        image[2:6, 1:7] = np.arange(72, dtype=np.uint8).reshape(4, 6, 3) * 3  # not flat: pixels can be compared
        self.outputs = [image]
        if self.ready_events:  # protocol 1.1: "ready" (the pixels exist) comes before "done" (the PNGs are written)
            self.emit({"type": "ready", "results": [{"index": 0, "url": f"/v1/jobs/{self.id}/results/0",
                                                    "width": 8, "height": 8}]})
        if script == "hold_evicted":
            self.outputs = None
        if script.startswith("hold"):
            self.png_gate.wait()
        if script == "hold_fail":
            self.error = {"code": "output_error", "message": "could not write the results: No space left on device",
                          "fix": "check that outputs/ is writable and has space"}
            self.emit({"type": "failed", "error": self.error})
            return
        self.results = [encode_png(image, text={"seed": "7"})]
        self.emit({"type": "done", "results": self.public_results()})

    def public_results(self) -> list[dict]:
        return [
            {"index": i, "url": f"/v1/jobs/{self.id}/results/{i}", "width": 8, "height": 8,
             "sha256": hashlib.sha256(r).hexdigest()}
            for i, r in enumerate(self.results)
        ]

    def public_status(self) -> dict:
        return {"id": self.id, "status": self.status, "position": 0 if self.status == "queued" else None,
                "stage": 0, "step": self.step, "steps": self.steps, "error": self.error,
                "results": self.public_results(), "record_url": f"/v1/jobs/{self.id}/record",
                "created": self.created, "started": self.started, "finished": self.finished}

    def record(self, protocol: int) -> dict:
        """The record as docs/protocol.md defines it: ``inputs`` maps each image key to its sha256."""
        return {"job": self.id, "backend": {"version": "0.1.0", "protocol": protocol, "device": "cpu",
                                            "dtype": "float32"},
                "spec": self.spec, "inputs": {k: hashlib.sha256(v).hexdigest() for k, v in self.images.items()},
                "resolved": {"device": "cpu", "dtype": "float32", "stages": []},
                "results": [{k: r[k] for k in ("index", "width", "height", "sha256")} for r in self.public_results()]}


class FakeBackend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str | None = None, protocol: int = 1, raw_results: bool = False,
                 ready_events: bool = True):
        super().__init__(("127.0.0.1", 0), Handler)
        self.token = token
        self.protocol = protocol
        self.raw_results = raw_results
        self.ready_events = ready_events
        #: What GET /v1/models lists and what GET /v1/health adds (tests of the checks before rendering).
        self.models: list[dict] = [{"id": "builtin:tiny", "kind": "base", "family": "sd15", "source": "builtin",
                                    "installed": True}]
        self.health_extra: dict = {}
        self.jobs: dict[str, FakeJob] = {}
        self.uploads: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.connections: set[socket.socket] = set()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        """Stop listening first, then cut open connections (event streams), as a dying backend does."""
        self.shutdown()
        self.server_close()
        for conn in list(self.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeBackend

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self):
        self.server.connections.discard(self.connection)
        super().finish()

    # ------------------------------------------------------------------------------- helpers

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, status: int, code: str, message: str, fix: str | None) -> None:
        self._json(status, {"error": {"code": code, "message": message, "fix": fix}})

    def _authorised(self) -> bool:
        token = self.server.token
        if not token:
            return True
        if self.headers.get("Authorization") == f"Bearer {token}" or f"token={token}" in self.path:
            return True
        self._error(401, "unauthorized", "this server needs a token", "send Authorization: Bearer <token>")
        return False

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _job(self, job_id: str) -> FakeJob | None:
        job = self.server.jobs.get(job_id)
        if job is None:
            self._error(404, "unknown_job", f"no job {job_id!r}", "finished jobs are kept for a while only")
        return job

    # -------------------------------------------------------------------------------- routes

    def do_GET(self):
        self.server.requests.append(("GET", self.path, dict(self.headers)))
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["v1", "health"]:  # health answers without a token, like the real one
            running = next((j.id for j in self.server.jobs.values() if j.status == "running"), None)
            return self._json(200, {"status": "ok", "version": "0.1.0", "protocol": self.server.protocol,
                                    "device": "cpu", "dtype": "float32", "queue": 0, "running": running,
                                    "max_side": 2048,
                                    # PNG only unless raw_results; server-chosen ids
                                    "image_formats": ["image/png"] + ([PIXELS] if self.server.raw_results else []),
                                    "client_job_ids": False,
                                    "memory_mode": "auto", "free_device_gb": None,
                                    "dtypes": dict.fromkeys(("sd15", "sdxl", "flux", "flux-schnell", "zimage", "qwen"), "float32"),
                                    "memory_plans": {},
                                    **self.server.health_extra})
        if not self._authorised():
            return
        if parts == ["v1", "models"]:
            return self._json(200, {"models": self.server.models})
        if len(parts) >= 3 and parts[:2] == ["v1", "jobs"]:
            job = self._job(parts[2])
            if job is None:
                return
            if len(parts) == 3:
                return self._json(200, job.public_status())
            raw = (self.server.raw_results and PIXELS in self.headers.get("Accept", "") and len(parts) == 5
                   and parts[3] == "results" and job.outputs is not None and job.status in ("running", "done"))
            if raw and int(parts[4]) < len(job.outputs or []):
                return self._send(200, encode_pixels(job.outputs[int(parts[4])]), PIXELS)
            if parts[3] in ("record", "results") and job.status != "done":
                if PIXELS in self.headers.get("Accept", ""):
                    job.refused_raw.set()
                return self._error(409, "not_done", f"job {job.id} is {job.status}; it exists once it is done",
                                   "wait for the job to finish")
            if parts[3] == "record":
                return self._json(200, job.record(self.server.protocol))
            if parts[3] == "results" and len(parts) == 5:
                i = int(parts[4])
                if i >= len(job.results):
                    return self._error(404, "no_such_result", f"job {job.id} has no result {i}",
                                       "ask for one of the results its status lists")
                return self._send(200, job.results[i], "image/png")
            if parts[3] == "events":
                return self._events(job)
        self._error(404, "not_found", f"no route {self.path}", None)

    def do_POST(self):
        self.server.requests.append(("POST", self.path, dict(self.headers)))
        body = self._body()
        if not self._authorised():
            return
        parts = self.path.strip("/").split("/")
        if parts == ["v1", "images"]:
            if not body.startswith(b"\x89PNG"):
                return self._error(415, "bad_image", "not a PNG", "send image/png")
            key = "sha256:" + hashlib.sha256(body).hexdigest()
            self.server.uploads[key] = body
            return self._json(201, {"id": key})
        if parts == ["v1", "jobs"]:
            ctype = self.headers.get("Content-Type", "")
            if ctype.startswith("multipart/form-data"):
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
                )
                spec, images = None, {}
                for part in msg.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    payload = part.get_payload(decode=True)
                    if name == "spec":
                        spec = json.loads(payload)
                    else:
                        assert part.get_filename(), "image parts must be file parts"
                        assert part.get_content_type() in (["image/png", PIXELS] if self.server.raw_results
                                                           else ["image/png"])
                        images[name] = payload
            else:
                spec, images = json.loads(body), {}
            if spec is None or spec.get("protocol") != 1 or not spec.get("stages"):
                return self._error(422, "invalid_spec", "the spec is invalid: stages: field required",
                                   "see docs/spec.md")
            named = {unit["image"] for stage in spec["stages"] for unit in stage.get("controlnets", [])}
            for key in sorted(named):
                if key not in images and key not in self.server.uploads:
                    return self._error(400, "missing_image", f"image {key!r} is missing", "send it")
            unexpected = sorted(set(images) - named)
            if unexpected:
                return self._error(400, "unexpected_part", f"the request has image part(s) {unexpected} that the"
                                   " spec never names", "send only the images the spec names")
            job = FakeJob(f"job{len(self.server.jobs) + 1}", spec, images, self.server.ready_events)
            self.server.jobs[job.id] = job
            threading.Thread(target=job.run, daemon=True).start()
            return self._json(202, {"id": job.id, "status": "queued", "position": 0})
        if len(parts) == 4 and parts[:2] == ["v1", "jobs"] and parts[3] == "cancel":
            job = self._job(parts[2])
            if job is None:
                return
            status = job.status  # the answer says what the job was: a running one ends with a cancelled event
            if status not in TERMINAL:  # protocol: cancelling a finished job changes nothing
                job.request_cancel()
            return self._json(200, {"id": job.id, "status": status})
        self._error(404, "not_found", f"no route {self.path}", None)

    # -------------------------------------------------------------------------------- events

    def _events(self, job: FakeJob) -> None:
        key = self.headers.get("Sec-WebSocket-Key")
        self.wfile.write(ws.handshake_response(key))
        self.wfile.flush()
        sock = self.connection
        with job.cond:  # the replay: past events, of previews only the latest (seq then has gaps)
            sent = len(job.events)
            past = job.events[:sent]
        latest = max((i for i, (data, _) in enumerate(past) if data["type"] == "preview"), default=-1)
        batch = [e for i, e in enumerate(past) if e[0]["type"] != "preview" or i == latest]
        while True:
            if not batch:
                with job.cond:
                    job.cond.wait_for(lambda: len(job.events) > sent)
                    batch = job.events[sent:]
                    sent = len(job.events)
            for data, png in batch:
                if job.spec.get("name") == "drop" and data["type"] == "step" and data["step"] == 2:
                    sock.shutdown(socket.SHUT_RDWR)  # the stream breaks; the job goes on
                    self.close_connection = True
                    return
                ws.send(sock, 0x1, json.dumps(data).encode())
                if png is not None:
                    ws.send(sock, 0x2, png)
                if data["type"] in TERMINAL:
                    try:  # the client may hang up first, right after the terminal event
                        ws.send_close(sock, 1000)
                        ws.read_message(sock)
                    except (ConnectionError, OSError):
                        pass
                    self.close_connection = True
                    return
            batch = []
