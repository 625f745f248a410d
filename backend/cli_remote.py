"""The CLI's side of protocol 1: a small standard-library client (plus ``websockets`` for events).

``generate --server`` sends the spec and its images in one multipart request (so the record keeps the
spec's own image keys), follows the job's WebSocket, then downloads each result and the record.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from .jobs.atomic import atomic_write
from .version import PROTOCOL


class RemoteError(Exception):
    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix


def encode_multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    """Text fields and PNG file parts -> (body, content type)."""
    boundary = "scenecast-" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n"
                f"Content-Type: application/json\r\n\r\n").encode() + value.encode() + b"\r\n"
    for name, data in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if ctype:
            req.add_header("Content-Type", ctype)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            try:
                err = json.loads(exc.read())["error"]
            except Exception:
                raise RemoteError(f"{method} {path}: HTTP {exc.code}") from exc
            raise RemoteError(f"{err['message']} (HTTP {exc.code}, {err['code']})", err.get("fix")) from exc
        except urllib.error.URLError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc.reason}",
                              "start it with `python -m backend serve`, or check --server") from exc

    def get_json(self, path: str) -> Any:
        return json.loads(self._request("GET", path))

    def get_bytes(self, path: str) -> bytes:
        return self._request("GET", path)

    def submit(self, spec: dict[str, Any], images: dict[str, bytes]) -> dict[str, Any]:
        body, ctype = encode_multipart({"spec": json.dumps(spec)}, images)
        return json.loads(self._request("POST", "/v1/jobs", body, ctype))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return json.loads(self._request("POST", f"/v1/jobs/{job_id}/cancel", b""))

    def events(self, job_id: str):  # noqa: ANN201 - yields (event dict, preview PNG bytes or None)
        """Follow the job's WebSocket until its terminal event."""
        from websockets.sync.client import connect

        ws_url = "ws" + self.url[len("http"):] + f"/v1/jobs/{job_id}/events"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        with connect(ws_url, additional_headers=headers, max_size=64 * 1024 * 1024) as ws:
            for frame in ws:
                if isinstance(frame, bytes):
                    continue  # only reached if a preview's PNG arrives unannounced
                event = json.loads(frame)
                png = ws.recv() if event["type"] == "preview" else None
                yield event, png
                if event["type"] in ("done", "failed", "cancelled"):
                    return


class ProgressPrinter:
    """Job events -> one-line progress on stderr."""

    def __init__(self, stream=sys.stderr) -> None:  # noqa: ANN001
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "step":
            if self.tty or event["step"] == event["steps"]:
                end = "\n" if event["step"] == event["steps"] else "\r"
                print(f"  stage {event['stage']}: step {event['step']}/{event['steps']}", end=end, file=self.stream)
        elif kind == "stage":
            print(f"stage {event['index']} ({event['stage']}, {event['steps']} steps)", file=self.stream)
        elif kind == "queued":
            print(f"queued at position {event['position']}", file=self.stream)
        elif kind == "download":
            total = f"/{event['total']}" if event.get("total") else ""
            print(f"downloading {event['model']}: {event['done']}{total} bytes", file=self.stream)
        elif kind in ("done", "failed", "cancelled"):
            print(kind, file=self.stream)
        self.stream.flush()


def generate_remote(url: str, spec: dict[str, Any], image_paths: dict[str, Path], out: Path, stem: str, *,
                    token: str | None = None) -> list[Path]:
    from .cli import CliError

    client = Client(url, token)
    try:
        health = client.get_json("/v1/health")
        if health.get("protocol") != PROTOCOL:
            raise CliError(f"the server speaks protocol {health.get('protocol')}, this CLI protocol {PROTOCOL}",
                           "update whichever side is older")
        accepted = client.submit(spec, {key: path.read_bytes() for key, path in image_paths.items()})
        job_id = accepted["id"]
        printer = ProgressPrinter()
        try:
            final = None
            for event, _png in client.events(job_id):
                printer(event)
                final = event
        except KeyboardInterrupt:
            client.cancel(job_id)
            raise
        if final is None or final["type"] != "done":
            error = (final or {}).get("error") or {"message": f"the job ended {final and final['type']}", "fix": None}
            raise CliError(error["message"], error.get("fix"))
        written = []
        for result in final["results"]:
            path = out / f"{stem}-{job_id[:8]}-{result['index']}.png"
            atomic_write(path, client.get_bytes(result["url"]))
            written.append(path)
        record_path = out / f"{stem}-{job_id[:8]}.json"
        record = client.get_json(f"/v1/jobs/{job_id}/record")
        atomic_write(record_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
        return written + [record_path]
    except RemoteError as exc:
        raise CliError(exc.message, exc.fix) from exc
