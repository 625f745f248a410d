"""What the server keeps on disk: --keep-jobs deletes files too, restarts sweep debris and apply the
caps, uploads expire, jobs of the previous run stay reachable, and the log file rotates."""

from __future__ import annotations

import hashlib
import os
import time

from _server import start_server, tiny_spec

DAY = 86400.0


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_retention_and_restart_sweep():
    first = start_server(args=("--keep-jobs", "2"))
    try:
        ids = [first.wait(first.submit_ok(tiny_spec(steps=1, seed=i)))["id"] for i in range(3)]
        out = first.data / "outputs"
        # the oldest job is forgotten by the API, and its files are gone with it
        assert first.json("GET", f"/v1/jobs/{ids[0]}")[0] == 404
        assert not (out / ids[0]).exists()
        assert all((out / i / "result-0.png").is_file() for i in ids[1:])
        kept = {i: first.request("GET", f"/v1/jobs/{i}/results/0")[2] for i in ids[1:]}
    finally:
        first.stop()

    # what a kill -9 leaves, an old job folder, an expired upload and a fresh one
    data = first.data
    (out / ids[1] / ".result-0.png.0badc0de.part").write_bytes(b"\0" * 2048)
    (out / "0123456789abcdef").mkdir()
    (data / "images" / ".feed.png.0badc0de.part").write_bytes(b"\0" * 2048)
    ancient = out / "ancient-job"
    ancient.mkdir()
    (ancient / "result-0.png").write_bytes(b"x")
    age(ancient / "result-0.png", 40 * DAY)
    expired, fresh = data / "images" / ("a" * 64 + ".png"), data / "images" / ("b" * 64 + ".png")
    expired.write_bytes(b"x")
    fresh.write_bytes(b"x")
    age(expired, 2 * DAY)

    second = start_server(data=data, args=("--keep-jobs", "2", "--log-file", str(data / "backend.log"),
                                           "--log-max-mb", "0.002", "--log-backups", "2", "--log-level", "debug"))
    try:
        assert not list(out.rglob("*.part")) and not list((data / "images").rglob("*.part"))
        assert not (out / "0123456789abcdef").exists() and not ancient.exists()
        assert not expired.exists() and fresh.exists()
        for job_id, png in kept.items():  # the previous run's jobs answer as before
            status, body = second.json("GET", f"/v1/jobs/{job_id}")
            assert status == 200 and body["status"] == "done", body
            status, _, raw = second.request("GET", f"/v1/jobs/{job_id}/results/0")
            assert status == 200 and raw == png
            assert hashlib.sha256(raw).hexdigest() == body["results"][0]["sha256"]
            assert second.json("GET", f"/v1/jobs/{job_id}/record")[1]["job"] == job_id
        newest = second.wait(second.submit_ok(tiny_spec(steps=1, seed=9)))["id"]
        assert second.json("GET", f"/v1/jobs/{ids[1]}")[0] == 404 and not (out / ids[1]).exists()
        assert (out / newest / "result-0.png").is_file()
        for _ in range(20):
            second.json("GET", "/v1/jobs/nothing-here")
    finally:
        second.stop()
    logs = sorted(p.name for p in data.glob("backend.log*"))
    assert logs == ["backend.log", "backend.log.1", "backend.log.2"], logs
    assert all(p.stat().st_size <= 4096 for p in data.glob("backend.log*"))
