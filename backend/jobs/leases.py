"""Client leases: who still needs this backend, so several Blenders can share one and it can stop when
none does.

A client (a Blender session, a script) takes a lease and renews it before ``ttl_s`` runs out; one that
crashes simply stops renewing and its lease expires. The server is *idle* while no lease is live and
no job runs or waits; ``serve --idle-exit S`` stops it after S seconds of idleness, and a client that
releases the last lease with ``shutdown_if_idle`` stops it at once when nothing else is going on. So
the Blender that started the backend can let go of it on exit without killing another Blender's job.

Times are ``time.monotonic()`` seconds; ``now`` is a parameter so the rules are testable as data.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

MIN_TTL_S, MAX_TTL_S, DEFAULT_TTL_S = 5.0, 3600.0, 60.0


@dataclass
class Lease:
    id: str
    client: str
    pid: int | None
    ttl_s: float
    expires: float

    def describe(self, now: float) -> dict:
        return {"id": self.id, "client": self.client, "pid": self.pid, "ttl_s": self.ttl_s,
                "expires_in_s": round(max(0.0, self.expires - now), 3)}


class LeaseTable:
    """Live leases and how long the server has been idle. ``busy()`` says whether jobs run or wait."""

    def __init__(self, busy: Callable[[], bool], clock: Callable[[], float] = time.monotonic) -> None:
        self._busy = busy
        self._clock = clock
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._idle_since: float | None = clock()

    def take(self, client: str, ttl_s: float = DEFAULT_TTL_S, pid: int | None = None) -> Lease:
        ttl = min(max(float(ttl_s), MIN_TTL_S), MAX_TTL_S)
        now = self._clock()
        lease = Lease(uuid.uuid4().hex, client[:200], pid, ttl, now + ttl)
        with self._lock:
            self._leases[lease.id] = lease
        return lease

    def renew(self, lease_id: str) -> Lease | None:
        """The renewed lease, or None when it is unknown or already expired (the client takes a new one)."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            lease = self._leases.get(lease_id)
            if lease is not None:
                lease.expires = now + lease.ttl_s
            return lease

    def release(self, lease_id: str) -> bool:
        with self._lock:
            return self._leases.pop(lease_id, None) is not None

    def live(self) -> list[Lease]:
        with self._lock:
            self._expire(self._clock())
            return list(self._leases.values())

    def busy(self) -> bool:
        """A job runs or waits."""
        return self._busy()

    def now(self) -> float:
        return self._clock()

    def idle_for(self) -> float:
        """Seconds since the server last had a live lease or a job (0 while it has one)."""
        now = self._clock()
        if self.live() or self._busy():
            self._idle_since = None
            return 0.0
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since

    def _expire(self, now: float) -> None:
        for lease_id in [k for k, v in self._leases.items() if v.expires <= now]:
            del self._leases[lease_id]
