"""Several GPUs behind a standard load balancer: two real backends (builtin:tiny) behind HAProxy from
Debian's packages with docs/deploy/haproxy.cfg. Two clients submit a batch under ids they choose;
consistent hashing on the id keeps each job's submit, events and results on one backend, the batch
spreads over both, and every result comes back through the balancer."""

from __future__ import annotations

import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from _proxies import start_haproxy
from _server import ROOT, TOKEN, start_server, tiny_spec

sys.path.insert(0, str(ROOT))
from addon.core.client import BackendClient  # noqa: E402
from addon.core.errors import BackendError  # noqa: E402

JOBS_PER_CLIENT = 12


@pytest.fixture(scope="module")
def backends():
    with ThreadPoolExecutor(2) as pool:  # each start imports torch: seconds, overlapped
        servers = list(pool.map(lambda _: start_server(token=TOKEN), range(2)))
    yield servers
    for server in servers:
        server.stop()


def test_a_batch_from_two_clients_spreads_over_both_backends_and_every_result_comes_back(backends, tmp_path):
    proxy = start_haproxy(tmp_path, [s.port for s in backends])
    try:
        url = f"http://127.0.0.1:{proxy.port}"
        depth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
        finished: dict[str, np.ndarray] = {}
        errors: list[BaseException] = []

        def client_run(seed: int) -> None:
            try:
                client = BackendClient(url, token=TOKEN, timeout=60)
                ids = [client.submit(tiny_spec(steps=2, seed=seed * 100 + i), {"depth": depth, "edges": depth},
                                     job_id=True) for i in range(JOBS_PER_CLIENT)]
                for job in ids:
                    finished[job] = client.wait_pixels(job, timeout=300)[0]
                    assert client.wait(job, timeout=300)["status"] == "done"
                    assert client.result(job, 0).startswith(b"\x89PNG")  # the saved PNG, through the balancer
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client_run, args=(n,)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not errors, errors
        assert len(finished) == 2 * JOBS_PER_CLIENT
        where = {}
        for job in finished:  # ask each backend directly which of them ran it
            owners = [i for i, s in enumerate(backends) if s.json("GET", f"/v1/jobs/{job}")[0] == 200]
            assert len(owners) == 1, f"job {job} is known to backends {owners}"
            where[job] = owners[0]
        assert set(where.values()) == {0, 1}, f"all jobs went to backend {set(where.values())}"
        assert all(image.shape == (64, 64, 3) for image in finished.values())
    finally:
        proxy.stop()


def test_a_client_chosen_id_is_validated_and_unique(backends):
    client = BackendClient(backends[0].url, token=TOKEN)
    job = uuid.uuid4().hex
    depth = np.zeros((64, 64, 3), np.uint8)
    assert client.submit(tiny_spec(steps=1), {"depth": depth, "edges": depth}, job_id=job) == job
    with pytest.raises(BackendError) as again:
        client.submit(tiny_spec(steps=1), {"depth": depth, "edges": depth}, job_id=job)
    assert again.value.status == 409 and again.value.code == "job_exists"
    with pytest.raises(BackendError) as bad:
        client.submit(tiny_spec(steps=1), {"depth": depth, "edges": depth}, job_id="a b")
    assert bad.value.status == 400 and bad.value.code == "bad_job_id"
    assert client.wait(job, timeout=120)["status"] == "done"
