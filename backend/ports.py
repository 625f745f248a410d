"""The server's listening socket, bound before anything heavy is imported, and who holds a busy port.

``serve`` binds its port first (standard library only, milliseconds) and hands the bound socket to
uvicorn, so "port in use" is reported before torch spends seconds importing, and the port cannot be
taken between the check and the bind. When the port is busy, :func:`port_holder` names what holds it:
psutil when it is installed, else Linux's ``/proc/net/tcp*`` (socket inode -> the process whose file
descriptor points at it). A holder owned by another user may not be identifiable; the message then
says so.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp


class PortInUse(OSError):
    """``port`` on ``host`` is taken; ``holder`` describes what holds it ("" when it cannot be found)."""

    def __init__(self, host: str, port: int, holder: str) -> None:
        self.host, self.port, self.holder = host, port, holder
        who = f" by {holder}" if holder else " (the process holding it could not be identified)"
        self.message = f"port {port} on {host} is already in use{who}"
        super().__init__(errno.EADDRINUSE, self.message)

    def __str__(self) -> str:
        return self.message


def bind_listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one. Raises :class:`PortInUse`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if os.name != "nt":  # as uvicorn does: rebind quickly after a restart (TIME_WAIT), never over a listener
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1), errno.EACCES):
            raise PortInUse(host, port, port_holder(port)) from exc
        raise
    sock.set_inheritable(True)
    return sock


def port_holder(port: int) -> str:
    """"pid 123 (python -m backend serve ...)" for the process listening on ``port``, else ""."""
    try:
        import psutil  # type: ignore[import-not-found]  # noqa: PLC0415 - optional
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            for conn in psutil.net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                    return _describe(conn.pid, " ".join(psutil.Process(conn.pid).cmdline()))
        except (psutil.Error, OSError):
            pass
    inodes = _listening_inodes(port)
    if not inodes:
        return ""
    pid = _pid_of_socket(inodes)
    if pid is None:
        return "another user's process" if Path("/proc/net/tcp").exists() else ""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmdline = ""
    return _describe(pid, cmdline)


def _describe(pid: int, cmdline: str) -> str:
    return f"pid {pid}" + (f" ({cmdline[:160]})" if cmdline else "")


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN_STATE and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _pid_of_socket(inodes: set[str]) -> int | None:
    targets = {f"socket:[{i}]" for i in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in targets:
                    return int(proc.name)
        except OSError:  # gone, or another user's: not readable
            continue
    return None
