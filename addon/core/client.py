"""The add-on's client for the Scenecast backend, protocol 1 (docs/protocol.md), standard library only.

HTTP through ``http.client`` (one connection per call, so a client may be shared between the main
thread and a worker), events through ``core.job_events`` over ``core.websocket``; ``https://`` URLs
use TLS (stdlib ``ssl``, certificates verified, optionally against a CA file) for HTTP and events
alike. On loopback images travel as raw pixels when the backend offers them (docs/protocol.md, "Raw
pixels"), else as PNG. Every failure is a ``ScenecastError`` with a ``message`` and a ``fix``
(``core.client_wire``): the backend's own ``{"error": {code, message, fix}}`` bodies are passed on as
they are; network failures say how to start the backend.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from .backend_process import DEFAULT_URL
from .errors import (
    AuthError,
    BackendError,
    BackendUnavailable,
    JobCancelled,
    JobFailed,
    ProtocolMismatch,
    ScenecastError,
    WaitTimeout,
)
from .pixels import MEDIA_TYPE as PIXELS, decode_pixels, is_pixels, pixel_pieces
from .png import control_png, decode_png
from .client_wire import (  # noqa: F401  (raise_for_job, encode_multipart, TERMINAL... are part of this API)
    START_BACKEND_FIX,
    TLS_FIX,
    TOKEN_FIX,
    Payload,
    encode_multipart,
    http_error,
    multipart_chunks,
    raise_for_job,
)
from .job_events import POLL_INTERVAL, TERMINAL, Event, JobEvents  # noqa: F401
from .jobspec import image_keys

__all__ = [
    "PROTOCOL",
    "BackendClient",
    "Event",
    "ScenecastError",
    "BackendUnavailable",
    "ProtocolMismatch",
    "BackendError",
    "AuthError",
    "JobFailed",
    "JobCancelled",
    "WaitTimeout",
    "raise_for_job",
]

#: The protocol this add-on speaks; the backend's ``/v1/health`` must report the same.
PROTOCOL = 1
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class BackendClient(JobEvents):
    """Talks to one backend. ``url``: e.g. :data:`DEFAULT_URL` (scheme optional) or "https://host" for a
    backend behind a TLS proxy; ``token``: the bearer token the backend was started with, if any;
    ``timeout``: seconds per HTTP call; ``ca_file``: a PEM file of the certificate authority (or the
    self-signed certificate) to trust for https, besides the system's; ``raw_images``: send and take
    images as raw pixels (None: when the backend offers them and it is on this machine)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        ca_file: str | None = None,
        raw_images: bool | None = None,
    ) -> None:
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ScenecastError(
                f"backend URL {url!r} is not an http:// or https:// URL",
                f"set the backend URL in the add-on preferences, e.g. {DEFAULT_URL}",
            )
        self.url = url.rstrip("/")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.token = token or None
        self.timeout = timeout
        self.ca_file = ca_file or None
        self._ssl: ssl.SSLContext | None = None
        self.raw_images = raw_images
        self._offers_pixels: bool | None = None  # what /v1/health said

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for https/wss: system CAs plus ``ca_file``; hostname and chain verified."""
        if self._ssl is None:
            try:
                self._ssl = ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ScenecastError(
                    f"the CA file {self.ca_file!r} cannot be read as PEM certificates ({exc})",
                    "set Preferences › Add-ons › Scenecast › CA File to the proxy's certificate (PEM), or clear it",
                ) from exc
        return self._ssl

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.ssl_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    # ------------------------------------------------------------------------------------ HTTP

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "scenecast-addon", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | list[Payload] | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
        accept: str | None = None,
    ) -> tuple[int, str, bytes]:
        """(status, content type, body) of a 2xx answer; raises a ScenecastError otherwise. A body given
        as a list of chunks is sent chunk by chunk (no copy into one buffer)."""
        headers = self._headers()
        if content_type:
            headers["Content-Type"] = content_type
        if isinstance(body, list):
            headers["Content-Length"] = str(sum(len(chunk) for chunk in body))
        if accept:
            headers["Accept"] = accept
        conn = self._connection(timeout or self.timeout)
        try:
            conn.request(method, self.prefix + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            ctype = response.getheader("Content-Type", "") or ""
        except (ConnectionRefusedError, socket.gaierror) as exc:
            raise BackendUnavailable(f"no Scenecast backend answers at {self.url} ({exc})", START_BACKEND_FIX) from exc
        except ssl.SSLError as exc:
            raise BackendUnavailable(f"the TLS connection to {self.url} failed: {exc}", TLS_FIX) from exc
        except (socket.timeout, TimeoutError) as exc:
            raise BackendUnavailable(
                f"the backend at {self.url} did not answer {method} {path} within {timeout or self.timeout:g} s",
                "it may be busy (loading a model) or stuck: look at its log, or restart it",
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise BackendUnavailable(
                f"the connection to the backend at {self.url} failed during {method} {path}: {exc}",
                "check that the backend is still running (its log says why it stopped); " + START_BACKEND_FIX,
            ) from exc
        finally:
            conn.close()
        if response.status >= 400:
            raise http_error(response.status, data, f"{method} {path}")
        return response.status, ctype, data

    def _json(
        self, method: str, path: str, body: bytes | list[Payload] | None = None, content_type: str | None = None
    ) -> Any:
        _, _, data = self._request(method, path, body, content_type)
        try:
            return json.loads(data)
        except ValueError:
            raise BackendError(
                f"{method} {path} answered something that is not JSON: {data[:120]!r}",
                f"is {self.url} a Scenecast backend? Check the URL in the add-on preferences",
            ) from None

    # ----------------------------------------------------------------------------- endpoints

    def health(self) -> dict[str, Any]:
        """``/v1/health``; raises ``BackendUnavailable`` or ``ProtocolMismatch`` with what to do (also when
        something answers that is not a Scenecast backend: a web server's HTML page, another API)."""
        try:
            info = self._json("GET", "/v1/health")
        except AuthError:
            raise
        except BackendError as exc:
            if exc.code:  # a Scenecast error body: the backend's own message and fix
                raise
            answer = f"HTTP {exc.status}" if exc.status else "an answer that is not JSON"
            raise ProtocolMismatch(
                f"{self.url} answers, but it is not a Scenecast backend (GET /v1/health gave {answer})",
                "check the Backend URL in Preferences › Add-ons › Scenecast: the backend's default is"
                f" {DEFAULT_URL}; start it there (Start Backend), or type the host:port it prints when it starts",
            ) from None
        if not isinstance(info, dict) or "protocol" not in info:
            raise ProtocolMismatch(
                f"the server at {self.url} does not say which protocol it speaks",
                f"is it a Scenecast backend? Check the URL; or update the backend to protocol {PROTOCOL}",
            )
        theirs = info["protocol"]
        if theirs != PROTOCOL:
            if isinstance(theirs, int) and theirs > PROTOCOL:
                fix = "update the Scenecast add-on (Preferences › Get Extensions) to one that speaks it"
            else:
                fix = "update the backend (git pull in its folder, then restart it) to one that speaks it"
            raise ProtocolMismatch(
                f"the backend speaks protocol {theirs}, this add-on speaks protocol {PROTOCOL}", fix
            )
        self._offers_pixels = PIXELS in (info.get("image_formats") or [])
        return info

    def sends_pixels(self) -> bool:
        """Whether images go as raw pixels: ``raw_images`` when set, else when the backend offers them
        and listens on this machine (elsewhere a PNG's bytes cost less than its encoding)."""
        if self.raw_images is not None:
            return self.raw_images
        if self._offers_pixels is None:
            self.health()
        return bool(self._offers_pixels) and self.host in LOOPBACK_HOSTS

    def image_payload(self, image: np.ndarray | Payload) -> Payload:
        """What to send for one control image, as one buffer: see ``image_pieces``."""
        pieces = self.image_pieces(image)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def image_pieces(self, image: np.ndarray | Payload) -> list[Payload]:
        """What to send for one control image, as the buffers to send one after another: encoded bytes
        pass through (not copied); an H x W (x C) uint8 array becomes raw pixels (see ``sends_pixels``;
        grey as one channel, a third of the bytes; from the array's own memory where it is contiguous,
        ``pixel_pieces``) or a PNG."""
        if isinstance(image, (bytes, bytearray, memoryview)):
            return [image]
        if image.dtype == np.uint8 and self.sends_pixels():
            if image.ndim == 3 and image.shape[2] == 3 and _grey(image):
                image = image[:, :, :1]  # depth and edges
            return list(pixel_pieces(image))
        return [control_png(image)]

    def models(self) -> list[dict[str, Any]]:
        """The backend's models: dicts with ``id``, ``kind``, ``family``, ``source``, ``installed``."""
        return list(self._json("GET", "/v1/models").get("models", []))

    def upload_image(self, png: bytes) -> str:
        """Upload a PNG once; its ``sha256:<hex>`` id can then name it in any job spec."""
        return str(self._json("POST", "/v1/images", bytes(png), "image/png")["id"])

    def submit(
        self,
        spec: Mapping[str, Any],
        images: Mapping[str, Payload | np.ndarray] | None = None,
        job_id: str | bool | None = None,
    ) -> str:
        """Submit a job: ``spec`` (protocol 1 job spec) and its images by key (PNG or raw pixel bytes,
        or uint8 arrays, sent as ``image_payload`` says). The job id.

        Images go as binary parts of one multipart/form-data request; without images the spec goes as
        JSON. Keys the spec names must be in ``images`` or be ``sha256:`` ids of uploaded images.
        ``job_id``: an id of your choosing (8-64 of A-Z a-z 0-9 _ -; ``True``: a random one), sent as
        ``PUT /v1/jobs/{id}`` so that a load balancer hashing the path keeps the whole job on one backend.
        """
        body_spec = dict(spec)
        body_spec.setdefault("protocol", PROTOCOL)
        images = dict(images or {})
        missing = sorted(k for k in image_keys(body_spec) if k not in images and not k.startswith("sha256:"))
        if missing:
            raise ScenecastError(
                f"the job spec names images that are not sent: {', '.join(missing)}",
                "pass them in `images` (key → PNG bytes), or upload them first and use their sha256: ids",
            )
        spec_json = json.dumps(body_spec).encode("utf-8")
        chosen = uuid.uuid4().hex if job_id is True else job_id or None
        method, path = ("PUT", f"/v1/jobs/{_seg(str(chosen))}") if chosen else ("POST", "/v1/jobs")
        if not images:
            answer = self._json(method, path, spec_json, "application/json")
        else:
            payloads = {key: self.image_pieces(image) for key, image in images.items()}
            chunks, ctype = multipart_chunks(spec_json, payloads)
            answer = self._json(method, path, chunks, ctype)
        return str(answer["id"])

    def status(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/jobs/{_seg(job_id)}"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/jobs/{_seg(job_id)}/cancel", b"", "application/json"))

    def result(self, job_id: str, index: int) -> bytes:
        """The PNG bytes of result ``index`` (its text chunks hold the parameters)."""
        _, ctype, data = self._request("GET", f"/v1/jobs/{_seg(job_id)}/results/{int(index)}")
        if not data.startswith(b"\x89PNG"):
            raise BackendError(f"result {index} of job {job_id} is not a PNG ({ctype or 'no content type'})")
        return data

    def result_pixels(self, job_id: str, index: int) -> np.ndarray:
        """Result ``index`` as H x W x 3 uint8 pixels: raw from the backend's memory as soon as the
        ``ready`` event came (the PNG may still be being written); a PNG decoded here otherwise."""
        _, ctype, data = self._request(
            "GET", f"/v1/jobs/{_seg(job_id)}/results/{int(index)}", accept=f"{PIXELS}, image/png;q=0.5"
        )
        try:
            return decode_pixels(data) if is_pixels(data) else decode_png(data)
        except ValueError as exc:
            raise BackendError(f"result {index} of job {job_id} cannot be read ({ctype}: {exc})") from exc

    def wait_pixels(
        self,
        job_id: str,
        on_event: Callable[[Event], None] | None = None,
        timeout: float | None = None,
    ) -> list[np.ndarray]:
        """Follow a job until its results exist and return their pixels, without waiting for the
        backend to write its PNGs (``ready`` event; a backend without it: ``done``). Failed or
        cancelled: ``JobFailed`` / ``JobCancelled``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        results: list[dict[str, Any]] | None = None
        for event in self._event_stream(job_id, poll=POLL_INTERVAL):
            if event is not None and on_event is not None:
                on_event(event)
            if event is not None and event.type in ("ready", "done"):
                results = list(event.data.get("results") or [])
                break
            if event is not None and event.terminal:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"job {job_id} did not finish within {timeout:g} s", "wait longer, or cancel it")
        if results is None:
            state = self.status(job_id)
            raise_for_job(state)
            results = list(state.get("results") or [])
        return [self.result_pixels(job_id, int(r.get("index", i))) for i, r in enumerate(results)]

    def record(self, job_id: str) -> dict[str, Any]:
        """The job's JSON record: spec, input image hashes, resolved parameters, device."""
        return dict(self._json("GET", f"/v1/jobs/{_seg(job_id)}/record"))

    # --------------------------------------------------------------------------------- events

    def events_url(self, job_id: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}{self.prefix}/v1/jobs/{_seg(job_id)}/events"

def _grey(image: np.ndarray) -> bool:
    """Whether an H x W x 3 image has three equal channels. A few sampled rows (~0.05 ms) decide most
    colour images; the whole check costs ~1 ms at 1024² (a third of comparing channel planes). One
    plane seen in three channels (``conventions.grey_channels``: stride 0) is grey without looking."""
    if image.strides[2] == 0:
        return True
    sample = image[:: max(1, image.shape[0] // 16)]
    if not (np.array_equal(sample[..., 0], sample[..., 1]) and np.array_equal(sample[..., 0], sample[..., 2])):
        return False
    # Each byte against the next, over the contiguous buffer (vectorised, unlike channel planes): a grey
    # image's differences are zero inside every pixel; those across pixel boundaries are cleared.
    flat = np.ascontiguousarray(image).reshape(-1)
    diff = np.empty(flat.size, np.uint8)
    np.bitwise_xor(flat[:-1], flat[1:], out=diff[:-1])
    diff.reshape(-1, 3)[:, 2] = 0
    return not (diff.view(np.uint64) if diff.size % 8 == 0 else diff).any()


def _seg(job_id: str) -> str:
    return quote(str(job_id), safe="")
