"""Real proxies from Debian's packages (Caddy, nginx, HAProxy) on loopback for the scale-out and TLS tests.

Each is started as its own process with a config written to a temporary folder, on a free port, and
stopped by the test. A test skips with a reason when the binary is absent (``.ci/run`` installs them
with apt-get first). The configs follow docs/deploy.md, which is what a studio would run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from _server import free_port

ROOT = Path(__file__).resolve().parents[2]


def need(binary: str) -> str:
    path = shutil.which(binary) or next((p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}")
                                         if Path(p).exists()), None)
    if path is None:
        pytest.skip(f"{binary} is not installed (apt-get install -y {binary}; .ci/run does this)")
    return path


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (PEM), made with openssl."""
    openssl = need("openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


class Proxy:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def wait_listening(self, timeout: float = 30.0) -> "Proxy":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the proxy exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the proxy did not listen on {self.port}:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start(cmd: list[str], folder: Path, port: int, env: dict[str, str] | None = None) -> Proxy:
    log = folder / "proxy.log"
    proc = subprocess.Popen(cmd, cwd=folder, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    return Proxy(proc, port, log).wait_listening()


def start_caddy(folder: Path, cert: Path, key: Path, upstream: int) -> Proxy:
    """Caddy terminating TLS on a free port and proxying HTTP and WebSocket to ``upstream``."""
    caddy = need("caddy")
    port = free_port()
    template = (ROOT / "docs" / "deploy" / "Caddyfile").read_text()
    config = (template.replace("scenecast.example.org", f"localhost:{port}, 127.0.0.1:{port}")
              .replace("127.0.0.1:7437", f"127.0.0.1:{upstream}")
              .replace("# tls /etc/scenecast/cert.pem /etc/scenecast/key.pem", f"tls {cert} {key}"))
    config = "{\n\tadmin off\n\tauto_https disable_redirects\n}\n" + config
    (folder / "Caddyfile").write_text(config)
    env = {"HOME": str(folder), "XDG_DATA_HOME": str(folder / "data"), "XDG_CONFIG_HOME": str(folder / "config"),
           "PATH": "/usr/bin:/bin"}
    return _start([caddy, "run", "--config", str(folder / "Caddyfile"), "--adapter", "caddyfile"], folder, port, env)


def start_nginx(folder: Path, cert: Path, key: Path, upstream: int) -> Proxy:
    """nginx terminating TLS on a free port, with the server block of docs/deploy/nginx.conf."""
    nginx = need("nginx")
    port = free_port()
    site = (ROOT / "docs" / "deploy" / "nginx.conf").read_text()
    site = (site.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
            .replace("/etc/scenecast/cert.pem", str(cert)).replace("/etc/scenecast/key.pem", str(key))
            .replace("127.0.0.1:7437", f"127.0.0.1:{upstream}"))
    temp = "".join(f"    {kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    config = (f"daemon off;\nuser root;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'proxy.log'} warn;\n"
              f"events {{ worker_connections 256; }}\nhttp {{\n    access_log off;\n{temp}{site}\n}}\n")
    (folder / "nginx.conf").write_text(config)
    return _start([nginx, "-c", str(folder / "nginx.conf"), "-p", str(folder), "-e", str(folder / "proxy.log")],
                  folder, port)


def start_haproxy(folder: Path, backends: list[int]) -> Proxy:
    """HAProxy with docs/deploy/haproxy.cfg: consistent hashing on the job id in the path."""
    haproxy = need("haproxy")
    port = free_port()
    config = (ROOT / "docs" / "deploy" / "haproxy.cfg").read_text()
    config = config.replace("bind :7437", f"bind 127.0.0.1:{port}")
    lines = [line for line in config.splitlines() if not line.strip().startswith("server gpu")]
    lines += [f"    server gpu{i} 127.0.0.1:{p}" for i, p in enumerate(backends)]
    (folder / "haproxy.cfg").write_text("\n".join(lines) + "\n")
    return _start([haproxy, "-db", "-f", str(folder / "haproxy.cfg")], folder, port)
