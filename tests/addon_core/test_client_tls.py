"""The client over TLS (issue 12, defect 9): https:// and wss:// with stdlib ssl, certificates verified,
a CA file to trust a proxy's own certificate. The test double serves TLS itself here; the real backend
behind a real TLS proxy is tested in tests/backend/test_tls_proxy.py."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from addon.core.client import BackendClient
from addon.core.errors import BackendUnavailable, ScenecastError
from addon.core.png import encode_png
from addon.core.websocket import WebSocket

sys.path.insert(0, str(Path(__file__).parent))
from fake_backend import FakeBackend  # noqa: E402

PNG = encode_png(np.zeros((8, 8, 3), np.uint8))
SPEC = {"model": "builtin:tiny", "prompt": "a house", "name": "ok", "steps": 3, "preview_every": 1,
        "stages": [{"type": "generate", "controlnets": [{"image": "depth", "type": "depth"}]}]}


def make_certificate(folder: Path, names: str = "DNS:localhost,IP:127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate and key (PEM) for the given subjectAltNames, with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (apt-get install openssl)")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", f"subjectAltName={names}"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def tls_backend(tmp_path_factory):
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    srv = FakeBackend()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    yield srv, cert, srv.server_address[1]
    srv.stop()


def test_a_job_with_its_events_runs_over_https_and_wss_with_a_ca_file(tls_backend):
    srv, cert, port = tls_backend
    client = BackendClient(f"https://localhost:{port}", ca_file=str(cert))
    assert client.events_url("j").startswith(f"wss://localhost:{port}/")
    assert client.health()["protocol"] == 1
    job = client.submit(SPEC, {"depth": PNG})
    seen = []
    final = client.wait(job, on_event=lambda e: seen.append(e.type), timeout=20)
    assert final["status"] == "done" and "preview" in seen and seen[-1] == "done"
    assert client.result(job, 0).startswith(b"\x89PNG")


def test_a_certificate_the_client_cannot_verify_is_refused_with_the_fix(tls_backend):
    _, _, port = tls_backend
    with pytest.raises(BackendUnavailable) as info:
        BackendClient(f"https://localhost:{port}").health()  # self-signed, no CA file
    assert "TLS" in info.value.message and "CA File" in info.value.fix
    with pytest.raises(ssl.SSLCertVerificationError):
        WebSocket.connect(f"wss://localhost:{port}/v1/jobs/x/events", timeout=5)


def test_a_ca_file_trusts_only_its_own_certificate(tmp_path, tls_backend):
    _, _, port = tls_backend
    other, _ = make_certificate(tmp_path, "DNS:localhost")
    with pytest.raises(BackendUnavailable):  # the server's certificate is not the one in this CA file
        BackendClient(f"https://localhost:{port}", ca_file=str(other)).health()


def test_an_unreadable_ca_file_says_so(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ScenecastError) as info:
        BackendClient("https://localhost:1", ca_file=str(bad)).health()
    assert "CA file" in info.value.message and "CA File" in info.value.fix
