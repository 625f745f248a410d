"""Running the server: uvicorn on the socket ``serve`` bound itself, "listening" logged only once it
serves, and a stop on demand (a lease release) or after idleness (``--idle-exit``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import uvicorn

from .jobs.leases import LeaseTable

log = logging.getLogger("scenecast")


class ListeningServer(uvicorn.Server):
    """Logs ``listening`` when the socket is bound *and* the app has started (the add-on and scripts may
    wait for that line); :meth:`stop_because` asks it to shut down, from a route or a thread."""

    def __init__(self, config: uvicorn.Config, listening: str) -> None:
        super().__init__(config)
        self.listening = listening

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            log.info(self.listening)

    def stop_because(self, reason: str) -> None:
        log.info("stopping: %s", reason)
        self.should_exit = True


def stop_when_idle(server: ListeningServer, leases: LeaseTable, idle_exit_s: float) -> None:
    """``--idle-exit``: stop once no lease is live and no job runs or waits for ``idle_exit_s`` seconds.
    Polls a few times a second at most (the idle time is a duration the user set, not an event)."""
    tick = min(1.0, max(0.05, idle_exit_s / 4))
    while not server.should_exit:
        if leases.idle_for() >= idle_exit_s:
            server.stop_because(f"idle for {idle_exit_s:g} s (no client lease, no job)")
            return
        time.sleep(tick)
