"""A protocol-1 test double of the backend on the stdlib http.server, for the client's unit tests.

It follows docs/protocol.md (endpoints, error bodies, auth, events with a binary frame after each
preview) with scripted jobs instead of diffusion: the spec's ``name`` picks the script —
"ok" (3 steps with previews, 1 result), "fail", "slow" (cancellable), "drop" (the event stream breaks
mid-job while the job goes on). The real end-to-end tests run against the real backend.
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

from addon.core.png import encode_png

import ws_server as ws

TERMINAL = ("done", "failed", "cancelled")


class FakeJob:
    def __init__(self, job_id: str, spec: dict, images: dict[str, bytes]):
        self.id = job_id
        self.spec = spec
        self.images = images
        self.events: list[tuple[dict, bytes | None]] = []
        self.cond = threading.Condition()
        self.status = "queued"
        self.step = 0
        self.error = None
        self.cancel_requested = threading.Event()
        self.results: list[bytes] = []

    def emit(self, data: dict, png: bytes | None = None) -> None:
        with self.cond:
            data = {"seq": len(self.events), **data}
            self.events.append((data, png))
            if data["type"] in TERMINAL:
                self.status = data["type"]
            elif data["type"] == "started":
                self.status = "running"
            self.cond.notify_all()

    def run(self) -> None:
        script = self.spec.get("name") or "ok"
        self.emit({"type": "queued", "position": 0})
        self.emit({"type": "started"})
        steps = 100 if script == "slow" else 3
        self.emit({"type": "stage", "index": 0, "stage": "generate", "steps": steps})
        for step in range(1, steps + 1):
            if self.cancel_requested.is_set():
                self.emit({"type": "cancelled"})
                return
            if script in ("slow", "drop"):
                time.sleep(0.05)
            self.step = step
            self.emit({"type": "step", "stage": 0, "step": step, "steps": steps})
            if script == "ok":
                preview = encode_png(np.full((8, 8, 3), step * 40, np.uint8))
                self.emit({"type": "preview", "stage": 0, "step": step, "width": 8, "height": 8}, preview)
        if script == "fail":
            self.error = {"code": "out_of_memory", "message": "CUDA out of memory", "fix": "lower the size"}
            self.emit({"type": "failed", "error": self.error})
            return
        self.results = [encode_png(np.full((8, 8, 3), 200, np.uint8), text={"seed": "7"})]
        self.emit({"type": "done", "results": self.public_results()})

    def public_results(self) -> list[dict]:
        return [
            {"index": i, "url": f"/v1/jobs/{self.id}/results/{i}", "width": 8, "height": 8,
             "sha256": hashlib.sha256(r).hexdigest()}
            for i, r in enumerate(self.results)
        ]

    def public_status(self) -> dict:
        return {"id": self.id, "status": self.status, "stage": 0, "step": self.step, "steps": 3,
                "error": self.error, "results": self.public_results(), "record_url": f"/v1/jobs/{self.id}/record"}


class FakeBackend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str | None = None, protocol: int = 1):
        super().__init__(("127.0.0.1", 0), Handler)
        self.token = token
        self.protocol = protocol
        self.jobs: dict[str, FakeJob] = {}
        self.uploads: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeBackend

    def log_message(self, *args):
        pass

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
            return self._json(200, {"status": "ok", "version": "0.1.0", "protocol": self.server.protocol,
                                    "device": "cpu", "dtype": "float32", "queue": 0})
        if not self._authorised():
            return
        if parts == ["v1", "models"]:
            return self._json(200, {"models": [{"id": "builtin:tiny", "kind": "base", "family": "sd15",
                                                "source": "builtin", "installed": True}]})
        if len(parts) >= 3 and parts[:2] == ["v1", "jobs"]:
            job = self._job(parts[2])
            if job is None:
                return
            if len(parts) == 3:
                return self._json(200, job.public_status())
            if parts[3] == "record":
                return self._json(200, {"spec": job.spec, "inputs": sorted(job.images)})
            if parts[3] == "results" and len(parts) == 5:
                i = int(parts[4])
                if i >= len(job.results):
                    return self._error(404, "no_result", f"job has no result {i}", None)
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
                        assert part.get_content_type() == "image/png"
                        images[name] = payload
            else:
                spec, images = json.loads(body), {}
            if spec is None or spec.get("protocol") != 1 or not spec.get("stages"):
                return self._error(422, "invalid_spec", "the spec is invalid: stages: field required",
                                   "see docs/spec.md")
            for stage in spec["stages"]:
                for unit in stage.get("controlnets", []):
                    key = unit["image"]
                    if key not in images and key not in self.server.uploads:
                        return self._error(400, "missing_image", f"image {key!r} is missing", "send it")
            job = FakeJob(f"job{len(self.server.jobs) + 1}", spec, images)
            self.server.jobs[job.id] = job
            threading.Thread(target=job.run, daemon=True).start()
            return self._json(202, {"id": job.id, "status": "queued", "position": 0})
        if len(parts) == 4 and parts[:2] == ["v1", "jobs"] and parts[3] == "cancel":
            job = self._job(parts[2])
            if job is None:
                return
            if job.status in TERMINAL:
                return self._error(409, "job_finished", f"job {job.id} is already {job.status}", None)
            job.cancel_requested.set()
            return self._json(200, {"id": job.id, "status": job.status})
        self._error(404, "not_found", f"no route {self.path}", None)

    # -------------------------------------------------------------------------------- events

    def _events(self, job: FakeJob) -> None:
        key = self.headers.get("Sec-WebSocket-Key")
        self.wfile.write(ws.handshake_response(key))
        self.wfile.flush()
        sock = self.connection
        sent = 0
        while True:
            with job.cond:
                job.cond.wait_for(lambda: len(job.events) > sent, timeout=10)
                batch = job.events[sent:]
            for data, png in batch:
                if job.spec.get("name") == "drop" and data["type"] == "step" and data["step"] == 2:
                    sock.shutdown(socket.SHUT_RDWR)  # the stream breaks; the job goes on
                    self.close_connection = True
                    return
                ws.send(sock, 0x1, json.dumps(data).encode())
                if png is not None:
                    ws.send(sock, 0x2, png)
                sent += 1
                if data["type"] in TERMINAL:
                    ws.send_close(sock, 1000)
                    try:
                        ws.read_message(sock)
                    except (ConnectionError, OSError):
                        pass
                    self.close_connection = True
                    return
