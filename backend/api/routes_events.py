"""``WS /v1/jobs/{id}/events``: a job's events as JSON text frames, each preview followed by its PNG.

The worker thread publishes into the job's EventLog; this handler's subscriber hops each event onto the
event loop with ``call_soon_threadsafe`` into an ``asyncio.Queue`` that only this connection reads.
"""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from ..jobs.events import Event
from ..jobs.queue import UnknownJob
from .auth import presented_token, token_ok
from .errors import error_body

router = APIRouter(prefix="/v1")
log = logging.getLogger("scenecast.api")


async def _send(ws: WebSocket, event: Event) -> None:
    await ws.send_text(json.dumps(event.data))
    if event.png is not None:
        await ws.send_bytes(event.png)


@router.websocket("/jobs/{job_id}/events")
async def job_events(ws: WebSocket, job_id: str) -> None:
    # Refusals are plain HTTP answers to the handshake (401, 404) with the usual error body.
    state = ws.app.state.scenecast
    if not token_ok(state.token, presented_token(ws)):
        await ws.send_denial_response(JSONResponse(error_body(
            "unauthorized", "this server needs a token and the handshake has none or a wrong one",
            "send `Authorization: Bearer <token>` or add `?token=<token>` to the URL"), status_code=401))
        return
    try:
        job = state.queue.get(job_id)
    except UnknownJob:
        await ws.send_denial_response(JSONResponse(error_body(
            "unknown_job", f"no job {job_id!r} on this server", "finished jobs are kept for a while only"),
            status_code=404))
        return
    await ws.accept()
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Event | None] = asyncio.Queue()
    pending_preview: list[Event] = []  # at most one: a slow client skips previews, never other events

    def put(event: Event) -> None:  # runs on the event loop
        if event.type == "preview":
            if pending_preview:
                pending_preview[0] = event  # the one still waiting is stale: replace it in place
                return
            pending_preview.append(event)
            inbox.put_nowait(None)  # its place in the order
        else:
            inbox.put_nowait(event)

    def deliver(event: Event) -> None:  # runs on the worker thread
        loop.call_soon_threadsafe(put, event)

    replay = job.events.subscribe(deliver)
    try:
        for event in replay:
            await _send(ws, event)
        last = replay[-1] if replay else None
        while last is None or not last.terminal:
            item = await inbox.get()
            last = item if item is not None else pending_preview.pop()
            await _send(ws, last)
        await ws.close(code=1000)
    except (WebSocketDisconnect, OSError):  # the client went away (uvicorn's ClientDisconnected is an OSError)
        log.debug("events client of job %s disconnected", job_id)
    finally:
        job.events.unsubscribe(deliver)
