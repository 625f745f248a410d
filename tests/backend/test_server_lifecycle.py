"""The server's life: a busy port found before torch loads, "listening" only once it serves, and client
leases that keep it for the clients who need it and let it stop when none does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from _server import ROOT, free_port, server_env, start_server, tiny_spec
from backend.jobs.leases import LeaseTable
from backend.ports import PortInUse, bind_listening_socket, port_holder


def test_a_busy_port_names_the_holder_and_is_found_before_torch_is_imported(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "backend", "serve", "--port", str(port)],
                              cwd=ROOT, env=server_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert f"error: port {port} on 127.0.0.1 is already in use by pid {os.getpid()}" in errors[0], errors
    assert errors[1].startswith("fix: stop what holds port") and "--port 0" in errors[1]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in imported and "uvicorn" not in imported  # refused before the heavy imports


def test_port_holder_finds_this_process_and_bind_refuses_with_it() -> None:
    sock = bind_listening_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port_holder(port).startswith(f"pid {os.getpid()} (")
        with pytest.raises(PortInUse) as info:
            bind_listening_socket("127.0.0.1", port)
        assert info.value.port == port and f"pid {os.getpid()}" in str(info.value)
    finally:
        sock.close()
    assert port_holder(port) == ""


def test_listening_is_logged_only_when_the_server_answers_and_port_0_is_named(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--port", "0", "--device", "cpu",
                             "--threads", "1"], cwd=ROOT, env=server_env(tmp_path), stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        line = ""
        while not line:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            line = next((ln for ln in log.read_text().splitlines() if "listening on http://" in ln), "")
            time.sleep(0.02)
        url = line.split("listening on ", 1)[1].split(";")[0]
        port = int(url.rsplit(":", 1)[1])
        assert port != 0
        with urllib.request.urlopen(url + "/v1/health", timeout=5) as resp:  # first try, no retry loop
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(30)


def test_lease_table_expires_unrenewed_leases_and_counts_idle_time() -> None:
    now = [100.0]
    busy = [False]
    table = LeaseTable(busy=lambda: busy[0], clock=lambda: now[0])
    a = table.take("blender-1", ttl_s=10)
    b = table.take("blender-2", ttl_s=30)
    assert table.idle_for() == 0.0
    now[0] += 9
    assert table.renew(a.id) is not None
    now[0] += 9  # a was renewed at 109: lives until 119
    assert {x.id for x in table.live()} == {a.id, b.id}
    now[0] += 2  # 120: a expired; b lives until 130
    assert [x.id for x in table.live()] == [b.id] and table.renew(a.id) is None
    assert table.release(b.id) and not table.release(b.id)
    busy[0] = True
    assert table.idle_for() == 0.0  # a job runs: not idle
    busy[0] = False
    assert table.idle_for() == 0.0
    now[0] += 7
    assert table.idle_for() == 7.0
    assert table.take("x", ttl_s=0.1).ttl_s == 5.0  # clamped: a lease must survive a renewal round trip


def test_leases_keep_the_server_for_every_client_and_let_it_stop_when_none_needs_it() -> None:
    server = start_server(args=("--idle-exit", "1"), gates=True)
    try:
        status, a = server.json("POST", "/v1/leases", {"client": "blender-a", "ttl_s": 600, "pid": 1})
        assert status == 201 and a["server_pid"] == server.proc.pid
        status, b = server.json("POST", "/v1/leases", {"client": "blender-b", "ttl_s": 600})
        assert status == 201
        # a lets go asking to stop the server if idle: b still holds a lease, so it stays
        status, body = server.json("DELETE", f"/v1/leases/{a['lease']['id']}?shutdown_if_idle=true")
        assert (status, body) == (200, {"released": True, "stopping": False})
        assert server.healthy()
        status, listing = server.json("GET", "/v1/leases")
        assert [x["client"] for x in listing["leases"]] == ["blender-b"] and listing["idle_exit_s"] == 1.0
        # b's job runs; b lets go too: the job keeps the server until it finishes
        gate = server.gate(1)  # the job waits after step 1 until released: it surely runs while b lets go
        job = server.submit_ok(tiny_spec(steps=4, size=64, preview_every=0, name=gate.mark))
        gate.wait_held()
        status, body = server.json("DELETE", f"/v1/leases/{b['lease']['id']}?shutdown_if_idle=true")
        assert body == {"released": True, "stopping": False}
        assert server.healthy()
        gate.release()
        assert server.wait(job, timeout=300)["status"] == "done"  # not cut short
        # now nothing holds it: --idle-exit stops it
        assert server.proc.wait(60) == 0
        assert "stopping: idle for 1 s" in server.log_tail()
        status = server.json("PUT", "/v1/leases/nope")[0] if server.proc.poll() is None else 404
        assert status == 404
    finally:
        server.stop()


def test_a_server_run_by_hand_is_never_stopped_by_a_client_releasing_its_lease() -> None:
    server = start_server()  # no --idle-exit: the user runs it until they stop it
    try:
        status, lease = server.json("POST", "/v1/leases", {"client": "blender"})
        status, body = server.json("DELETE", f"/v1/leases/{lease['lease']['id']}?shutdown_if_idle=true")
        assert body == {"released": True, "stopping": False}
        assert server.healthy()
    finally:
        server.stop()


def test_releasing_the_last_lease_stops_an_idle_server_at_once_and_unknown_leases_are_404() -> None:
    server = start_server(args=("--idle-exit", "600"))
    try:
        status, body = server.json("PUT", "/v1/leases/not-a-lease")
        assert status == 404 and body["error"]["code"] == "unknown_lease" and "POST /v1/leases" in body["error"]["fix"]
        status, lease = server.json("POST", "/v1/leases", {"client": "only", "ttl_s": 60})
        assert server.json("PUT", f"/v1/leases/{lease['lease']['id']}")[0] == 200
        status, body = server.json("DELETE", f"/v1/leases/{lease['lease']['id']}?shutdown_if_idle=true")
        assert body == {"released": True, "stopping": True}
        assert server.proc.wait(60) == 0
    finally:
        server.stop()
