"""What goes over HTTP besides the calls themselves: the multipart body of a job, the error a failed
answer becomes (the backend's own ``{"error": {code, message, fix}}`` passed on), the error of a job
that did not finish, and the fixes those errors name. Standard library only."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import AuthError, BackendError, JobCancelled, JobFailed, ScenecastError
from .pixels import MEDIA_TYPE as PIXELS, is_pixels
from .sync_views import CONTENT_TYPE as CORRESPONDENCE_TYPE, MAGIC as CORRESPONDENCE_MAGIC

START_BACKEND_FIX = (
    'start the backend with `python -m backend serve`, or enable "Start local backend" in the add-on'
    " preferences (Preferences › Add-ons › Scenecast)"
)
TOKEN_FIX = (
    "set the token in the add-on preferences to the one the backend was started with"
    " (--token or SCENECAST_TOKEN)"
)
#: What an image part may be: encoded bytes in any bytes-like buffer (sent without a copy).
Payload = bytes | bytearray | memoryview

TLS_FIX = (
    "if the backend's TLS proxy uses its own certificate authority (or a self-signed certificate), set"
    " Preferences › Add-ons › Scenecast › CA File to that certificate; check that the URL's host name is"
    " the one in the certificate"
)


def raise_for_job(status: Mapping[str, Any]) -> None:
    """Raise ``JobFailed`` / ``JobCancelled`` for a final status that is not "done"."""
    state = status.get("status")
    if state == "done":
        return
    job = status.get("id", "?")
    if state == "cancelled":
        raise JobCancelled(f"job {job} was cancelled", job_id=str(job))
    error = status.get("error") or {}
    raise JobFailed(
        f"job {job} {state}: {error.get('message') or 'no reason given'}",
        error.get("fix") or "look at the backend log for details",
        status=str(state), job_id=str(job), code=str(error.get("code") or ""),
    )


def encode_multipart(spec_json: bytes, images: Mapping[str, Payload | Sequence[Payload]]) -> tuple[bytes, str]:
    """A multipart/form-data body: part ``spec`` (JSON) and one binary file part (PNG or raw pixels)
    per image key, given as one buffer or as the buffers that follow one another in it."""
    chunks, ctype = multipart_chunks(spec_json, images)
    return b"".join(chunks), ctype


def multipart_chunks(
    spec_json: bytes, images: Mapping[str, Payload | Sequence[Payload]]
) -> tuple[list[Payload], str]:
    """``encode_multipart``'s body as the list of its pieces, the images not copied."""
    boundary = "scenecast-" + os.urandom(16).hex()
    chunks: list[Payload] = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="spec"\r\n'
        "Content-Type: application/json\r\n\r\n".encode("ascii"),
        spec_json,
        b"\r\n",
    ]
    for key, value in images.items():
        pieces: list[Payload] = [value] if isinstance(value, (bytes, bytearray, memoryview)) else list(value)
        data = pieces[0]
        if not key or any(c in key for c in '"\r\n\\'):
            raise ScenecastError(f"image key {key!r} cannot be sent", "use letters, digits and _ . : - in image keys")
        if bytes(data[:4]) == CORRESPONDENCE_MAGIC:  # a texture_sync correspondence (core/sync_views.encode)
            kind, ext = CORRESPONDENCE_TYPE, "sccr"
        else:
            kind, ext = (PIXELS, "px") if is_pixels(data) else ("image/png", "png")
        chunks += [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; filename="{key}.{ext}"\r\n'
            f"Content-Type: {kind}\r\n\r\n".encode("utf-8"),
            *pieces,  # bytes, bytearray or memoryview: sent as they are, not copied
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return chunks, f"multipart/form-data; boundary={boundary}"


def http_error(status: int, body: bytes, what: str) -> ScenecastError:
    """The ScenecastError for an HTTP error answer, using the backend's error body when there is one."""
    code, message, fix = "", "", ""
    try:
        err = json.loads(body).get("error") or {}
        code, message, fix = str(err.get("code") or ""), str(err.get("message") or ""), str(err.get("fix") or "")
    except (ValueError, AttributeError):
        pass
    if not message:
        text = body[:200].decode("utf-8", "replace").strip()
        message = f"{what} failed with HTTP {status}" + (f": {text}" if text else "")
    if status in (401, 403):
        return AuthError(message, fix or TOKEN_FIX, status=status, code=code)
    if not fix and status >= 500:
        fix = "this is a backend problem: look at the backend's log"
    return BackendError(message, fix or None, status=status, code=code)

