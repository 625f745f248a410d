"""This Blender's lease on a local backend, so several Blenders can share one.

While the add-on uses a backend on this machine it holds a lease (``POST /v1/leases``) and renews it
from a daemon thread every third of its time to live. On exit it releases the lease asking the
backend to stop *if nothing else needs it* (``shutdown_if_idle``): another Blender's lease or a job
still running keeps it alive. A Blender that crashes stops renewing and its lease expires; the
backend's ``--idle-exit`` then stops it, unless the next Blender finds it first (backend_owner.py).

A backend without leases (an older one) answers 404: the add-on then just does not hold one.
Standard library only.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TTL_S = 60.0


def _call(url: str, method: str, path: str, token: str = "", body: dict | None = None,
          timeout: float = 5.0) -> tuple[int, Any]:
    """(HTTP status, JSON body or None); status 0 when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def server_pid(url: str, token: str = "") -> int | None:
    """The backend's process id from ``GET /v1/leases``, None when it does not answer with one."""
    status, body = _call(url, "GET", "/v1/leases", token, timeout=2.0)
    return int(body["server_pid"]) if status == 200 and isinstance(body, dict) and "server_pid" in body else None


@dataclass
class HeldLease:
    url: str
    token: str
    client: str
    ttl_s: float
    lease_id: str = ""
    server_pid: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def take(self) -> bool:
        status, body = _call(self.url, "POST", "/v1/leases", self.token,
                             {"client": self.client, "ttl_s": self.ttl_s, "pid": os.getpid()})
        if status == 201 and isinstance(body, dict):
            self.lease_id = body["lease"]["id"]
            self.server_pid = body.get("server_pid")
            return True
        return False

    def renew(self) -> None:
        status, _ = _call(self.url, "PUT", f"/v1/leases/{self.lease_id}", self.token)
        if status == 404:  # expired (this machine slept, the backend restarted): take a new one
            self.take()

    def start_renewing(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.ttl_s / 3):
                self.renew()

        self._thread = threading.Thread(target=loop, name="scenecast-lease", daemon=True)
        self._thread.start()

    def release(self, shutdown_if_idle: bool) -> bool | None:
        """Stop renewing and release. True: the backend is stopping; False: others still need it;
        None: it did not answer."""
        self._stop.set()
        query = "?shutdown_if_idle=true" if shutdown_if_idle else ""
        status, body = _call(self.url, "DELETE", f"/v1/leases/{self.lease_id}{query}", self.token)
        if status == 200 and isinstance(body, dict):
            return bool(body.get("stopping"))
        return None


_held: dict[str, HeldLease] = {}
_lock = threading.Lock()


def hold(url: str, token: str = "", client: str = "", ttl_s: float = DEFAULT_TTL_S) -> HeldLease | None:
    """Hold (and keep renewing) a lease on the backend at ``url``; the one already held is reused.
    None when the backend has no leases (an older backend) or does not answer."""
    key = url.rstrip("/")
    with _lock:
        lease = _held.get(key)
        if lease is not None:
            return lease
        lease = HeldLease(key, token, client or f"blender pid {os.getpid()}", ttl_s)
        if not lease.take():
            return None
        lease.start_renewing()
        _held[key] = lease
        return lease


def held(url: str) -> HeldLease | None:
    with _lock:
        return _held.get(url.rstrip("/"))


def release_all(shutdown_if_idle: bool = True) -> dict[str, bool | None]:
    """Release every lease this process holds: url -> what :meth:`HeldLease.release` answered."""
    with _lock:
        leases = list(_held.values())
        _held.clear()
    return {lease.url: lease.release(shutdown_if_idle) for lease in leases}
