"""The server's logging: one place sets up every handler, and every handler redacts secrets.

Redaction sits in the *formatter* of each handler, not in a filter on chosen loggers, because at
``--log-level debug`` libraries we do not control (uvicorn's WebSocket implementations, websockets,
python-multipart) log request lines and raw headers from loggers of their own; a formatter sees the
final text of every record, tracebacks included. What is blanked: ``token=...`` in query strings,
``Authorization``/``Bearer`` values, and the configured token itself wherever it appears.

``backend.log`` rotates (``RotatingFileHandler``) so that a server left running for weeks keeps a
bounded log: ``max_bytes`` per file, ``backups`` old files beside it (``backend.log.1`` ...).
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "<redacted>"
MIN_SECRET = 6  # shorter tokens are not replaced wherever they occur (that would garble every line)
PATTERNS = (
    re.compile(r"([?&]token=)[^&\s\"'#]+", re.IGNORECASE),  # ?token=... in URLs and request lines
    re.compile(r"(\bbearer\s+)[^\s\"',;)\]]+", re.IGNORECASE),  # Authorization: Bearer ...
    # Authorization: <scheme> <value>, also as a repr'd header tuple: (b'authorization', b'Bearer ...')
    re.compile(r"(\bauthorization\b[\"']?\s*[:=,]\s*(?:b?[\"'])?(?:(?:bearer|basic|token)\s+)?)[^\s\"',;)\]]+",
               re.IGNORECASE),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every token-like value replaced by ``<redacted>``."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET:
            text = text.replace(secret, REDACTED)
    for pattern in PATTERNS:
        text = pattern.sub(r"\1" + REDACTED, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose output (message, arguments and traceback) passes through :func:`redact`."""

    def __init__(self, fmt: str = FORMAT, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def setup_logging(level: str = "info", log_file: Path | None = None, *, max_bytes: int = 10 << 20,
                  backups: int = 3, secrets: Iterable[str] = ()) -> list[logging.Handler]:
    """Route every logger (uvicorn's included: start it with ``log_config=None``) to stderr and, when
    ``log_file`` is given, to a rotating file that gets everything while stderr keeps warnings and errors
    (a process whose stderr is kept in a file by whoever started it stays bounded). All redact.
    Returns the handlers installed on the root."""
    formatter = RedactingFormatter(FORMAT, secrets)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers[0].setLevel(logging.WARNING)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=backups,
                                                             encoding="utf-8"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    return handlers


def refuse_unusable_token(token: str) -> str | None:
    """Why ``token`` could never be presented correctly, or None.

    HTTP headers carry latin-1, and clients strip surrounding whitespace from header values; a token
    outside latin-1, with control characters or with spaces at its ends is accepted by nothing.
    """
    try:
        token.encode("latin-1")
    except UnicodeEncodeError:
        return "it has characters outside latin-1, which an HTTP header cannot carry"
    if any(ord(c) < 32 or ord(c) == 127 for c in token):
        return "it has control characters (tab, newline ...), which an HTTP header cannot carry"
    if token != token.strip():
        return "it starts or ends with whitespace, which HTTP clients strip from header values"
    return None
