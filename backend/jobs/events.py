"""A job's event log: appended by the worker thread, read by any number of subscribers.

Subscribers are plain callables run on the worker thread under the log's lock, so a subscriber that
lives on an asyncio loop hands each event over with ``loop.call_soon_threadsafe`` (see
``api/events.py``). Registering a subscriber returns the replay of past events in the same critical
section, so a late subscriber sees every event exactly once: replayed or streamed, never both.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

TERMINAL = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True)
class Event:
    """One event: its JSON fields (``seq`` and ``type`` included) and, for previews, the PNG bytes."""

    data: dict[str, Any]
    png: bytes | None = None

    @property
    def type(self) -> str:
        return self.data["type"]

    @property
    def seq(self) -> int:
        return self.data["seq"]

    @property
    def terminal(self) -> bool:
        return self.data["type"] in TERMINAL


Subscriber = Callable[[Event], None]


class EventLog:
    """Ordered events of one job with strictly increasing ``seq`` starting at 1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._latest_preview: Event | None = None
        self._subscribers: list[Subscriber] = []
        self._last_seq = 0

    def append(self, type: str, png: bytes | None = None, **fields: Any) -> Event:
        with self._lock:
            self._last_seq += 1
            seq = self._last_seq
            event = Event({"seq": seq, "type": type, **fields}, png)
            if type == "preview":
                # Keep only the latest preview: replays skip older ones, and memory stays bounded.
                self._latest_preview = event
            else:
                self._events.append(event)
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:  # a gone subscriber must not fail the job that publishes
                    self._subscribers.remove(subscriber)
            if event.terminal:
                self._subscribers.clear()
            return event

    def subscribe(self, subscriber: Subscriber) -> list[Event]:
        """Register ``subscriber`` for future events; return the past ones (of previews only the latest).

        When the log already ended with a terminal event the subscriber is not kept: the replay is all.
        """
        with self._lock:
            replay = self._replay_locked()
            if not (replay and replay[-1].terminal):
                self._subscribers.append(subscriber)
            return replay

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def replay(self) -> list[Event]:
        with self._lock:
            return self._replay_locked()

    def _replay_locked(self) -> list[Event]:
        events = list(self._events)
        if self._latest_preview is not None:
            events.append(self._latest_preview)
            events.sort(key=lambda e: e.seq)
        return events
