"""The add-on's client through a real TLS reverse proxy (issue 12, defect 9): Caddy and nginx from
Debian's packages on loopback, with a certificate made by the test, in front of the real backend.
A job runs with its events over wss:// and its result over https://; without the CA file the client
refuses the proxy's certificate."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from _proxies import make_certificate, start_caddy, start_nginx
from _server import ROOT, TOKEN, shared_server, tiny_spec

sys.path.insert(0, str(ROOT))
from addon.core.client import BackendClient  # noqa: E402
from addon.core.errors import BackendUnavailable  # noqa: E402


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("cert"))


@pytest.mark.parametrize("start", [start_caddy, start_nginx], ids=["caddy", "nginx"])
def test_a_job_runs_through_a_tls_proxy_with_its_events(start, certificate, tmp_path):
    cert, key = certificate
    proxy = start(tmp_path, cert, key, shared_server().port)
    try:
        url = f"https://localhost:{proxy.port}"
        with pytest.raises(BackendUnavailable) as refused:
            BackendClient(url, token=TOKEN).health()  # the test certificate is trusted only via the CA file
        assert "CA File" in refused.value.fix
        client = BackendClient(url, token=TOKEN, ca_file=str(cert))
        assert client.health()["protocol"] == 1
        depth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
        job = client.submit(tiny_spec(steps=3), {"depth": depth, "edges": 255 - depth})
        events = []
        final = client.wait(job, on_event=events.append, timeout=120)
        assert final["status"] == "done", final
        types = [e.type for e in events]
        assert types[0] in ("queued", "started") and "step" in types and types[-1] == "done"
        png = client.result(job, 0)
        assert png.startswith(b"\x89PNG")
        assert client.result_pixels(job, 0).shape == (64, 64, 3)
    finally:
        proxy.stop()
