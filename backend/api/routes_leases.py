"""Client leases over HTTP (``/v1/leases``): take, renew, release, list. See backend/jobs/leases.py.

``serve`` attaches them with :func:`attach_leases`, which also gives the router a way to stop the
server (a release with ``shutdown_if_idle`` when nothing else needs it). The list carries the server's
process id, so a client that found this server through a pid file can check it talks to that process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from ..jobs.leases import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S, LeaseTable
from .auth import HTTP_AUTH
from .errors import ApiError
from .schemas import ERRORS

router = APIRouter(prefix="/v1", dependencies=HTTP_AUTH, responses=ERRORS, tags=["leases"])


@dataclass
class LeaseService:
    table: LeaseTable
    stop: Callable[[str], None]  # asks the server to shut down, with the reason for the log
    idle_exit_s: float | None


class LeaseRequest(BaseModel):
    client: str = Field("client", max_length=200, description="who holds it, for the log and the list")
    ttl_s: float = Field(DEFAULT_TTL_S, ge=MIN_TTL_S, le=MAX_TTL_S, description="renew before this runs out")
    pid: int | None = Field(None, description="the client's process id, informational")


class LeaseAnswer(BaseModel):
    lease: dict
    server_pid: int


class ReleaseAnswer(BaseModel):
    released: bool
    stopping: bool


class LeaseList(BaseModel):
    leases: list[dict]
    server_pid: int
    idle_s: float
    idle_exit_s: float | None
    busy: bool


def _service(request: Request) -> LeaseService:
    return request.app.state.scenecast_leases


@router.post("/leases", response_model=LeaseAnswer, status_code=201)
def take(body: LeaseRequest, request: Request) -> LeaseAnswer:
    service = _service(request)
    lease = service.table.take(body.client, body.ttl_s, body.pid)
    return LeaseAnswer(lease=lease.describe(lease.expires - lease.ttl_s), server_pid=os.getpid())


@router.put("/leases/{lease_id}", response_model=LeaseAnswer)
def renew(lease_id: str, request: Request) -> LeaseAnswer:
    lease = _service(request).table.renew(lease_id)
    if lease is None:
        raise ApiError(404, "unknown_lease", f"no live lease {lease_id!r} (it expired or was released)",
                       "take a new lease with POST /v1/leases and renew it before its ttl_s runs out")
    return LeaseAnswer(lease=lease.describe(lease.expires - lease.ttl_s), server_pid=os.getpid())


@router.delete("/leases/{lease_id}", response_model=ReleaseAnswer)
def release(lease_id: str, request: Request, shutdown_if_idle: bool = False) -> ReleaseAnswer:
    """Release a lease; with ``shutdown_if_idle`` a server started to stop when idle (``--idle-exit``)
    stops now when no other lease is live and no job runs or waits (else it stays for the others). A
    server without ``--idle-exit`` (one a user runs by hand) is never stopped by a client."""
    service = _service(request)
    released = service.table.release(lease_id)
    stopping = (shutdown_if_idle and service.idle_exit_s is not None and not service.table.live()
                and not service.table.busy())
    if stopping:
        service.stop(f"the last lease ({lease_id[:8]}) was released and nothing runs")
    return ReleaseAnswer(released=released, stopping=stopping)


@router.get("/leases", response_model=LeaseList)
def listing(request: Request) -> LeaseList:
    table = _service(request).table
    now = table.now()
    return LeaseList(leases=[lease.describe(now) for lease in table.live()], server_pid=os.getpid(),
                     idle_s=round(table.idle_for(), 3), idle_exit_s=_service(request).idle_exit_s,
                     busy=table.busy())


def attach_leases(app: FastAPI, table: LeaseTable, stop: Callable[[str], None], idle_exit_s: float | None) -> None:
    app.state.scenecast_leases = LeaseService(table, stop, idle_exit_s)
    app.include_router(router)
