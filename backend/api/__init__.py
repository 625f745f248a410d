"""HTTP + WebSocket API (protocol in docs/protocol.md) over the jobs layer."""

from .app import ServerState, create_app

__all__ = ["ServerState", "create_app"]
