"""Which host names are this machine's loopback: the one rule behind the server's browser guard
(api/origin.py) and ``serve``'s refusal to listen elsewhere without a token (cli.py). Standard
library only, so ``serve`` can use it before anything heavy is imported."""

from __future__ import annotations

import ipaddress


def is_loopback_name(name: str) -> bool:
    """``localhost`` or an exact loopback address (127.0.0.0/8, ::1) — never a name that merely starts
    like one: ``127.0.0.1.evil.example`` is a DNS name its owner can point at 127.0.0.1 (rebinding)."""
    name = name.lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
