"""What the server keeps on disk, and for how long: results, uploads and the debris of a killed server.

- **Debris.** ``atomic_write`` writes ``.<name>.<random>.part`` and renames it; a server killed with
  ``kill -9`` (or a full disk) leaves the ``.part`` file, and an empty job folder when the job's first
  result never landed. :meth:`Retention.sweep_debris` removes both at start.
- **Results.** A job's files live in ``out/<job id>/``. The server keeps ``keep_jobs`` finished jobs
  queryable; when the queue forgets one, :meth:`Retention.forget` deletes its folder, so the API and
  the disk agree. At start, the newest ``keep_jobs`` job folders of the previous run are loaded back
  as finished jobs (:func:`restore_jobs`) and older ones are deleted. An age cap (``max_age_s``) and a
  size cap (``max_bytes``, oldest first) apply at start and then every ``interval_s``.
- **Uploads.** ``POST /v1/images`` files expire ``upload_ttl_s`` after they were last written.
Times are seconds (file mtimes); sizes are bytes.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from ..spec import JobSpec
from .record import Job

log = logging.getLogger("scenecast.jobs")
RESULT_STEM = "result"  # the queue's default place: out/<id>/result-<n>.png and result.json


@dataclass
class JobFolder:
    path: Path
    mtime: float  # the newest file's, seconds since the epoch
    nbytes: int


def job_folders(out_dir: Path) -> list[JobFolder]:
    """Every job folder under ``out_dir``, newest first."""
    folders = []
    for path in out_dir.iterdir() if out_dir.is_dir() else ():
        if not path.is_dir() or path.name.startswith("."):
            continue
        stats = [f.stat() for f in path.iterdir() if f.is_file()]
        mtime = max((s.st_mtime for s in stats), default=path.stat().st_mtime)
        folders.append(JobFolder(path, mtime, sum(s.st_size for s in stats)))
    return sorted(folders, key=lambda f: f.mtime, reverse=True)


@dataclass
class Retention:
    out_dir: Path
    images_dir: Path
    keep_jobs: int = 200
    max_age_s: float | None = None
    max_bytes: int | None = None
    upload_ttl_s: float | None = 24 * 3600.0
    interval_s: float = 600.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def sweep_debris(self) -> int:
        """Delete ``.part`` files left by a killed server and empty job folders; return how many."""
        removed = 0
        for root in (self.out_dir, self.images_dir):
            for part in root.rglob(".*.part") if root.is_dir() else ():
                part.unlink(missing_ok=True)
                removed += 1
        for folder in self.out_dir.iterdir() if self.out_dir.is_dir() else ():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
                removed += 1
        if removed:
            log.info("removed %d leftovers of an interrupted run (.part files, empty job folders)", removed)
        return removed

    def forget(self, job: Job) -> None:
        """The queue forgot ``job``: delete its result folder (only ever a direct child of ``out_dir``)."""
        folder = self.out_dir / job.id
        if job.id and folder.parent == self.out_dir and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            log.debug("deleted the results of job %s (no longer kept)", job.id)

    def enforce(self, now: float | None = None, keep: int | None = None) -> list[str]:
        """Apply the count (``keep``, at start), age and size caps to job folders, and expire uploads.
        Returns the ids of the job folders deleted."""
        now = time.time() if now is None else now
        deleted: list[str] = []
        total = 0
        for n, folder in enumerate(job_folders(self.out_dir)):
            total += folder.nbytes
            too_many = keep is not None and n >= keep
            too_old = self.max_age_s is not None and now - folder.mtime > self.max_age_s
            too_big = self.max_bytes is not None and total > self.max_bytes
            if too_many or too_old or too_big:
                shutil.rmtree(folder.path, ignore_errors=True)
                total -= folder.nbytes
                deleted.append(folder.path.name)
        expired = 0
        if self.upload_ttl_s is not None and self.images_dir.is_dir():
            for upload in self.images_dir.glob("*.png"):
                if now - upload.stat().st_mtime > self.upload_ttl_s:
                    upload.unlink(missing_ok=True)
                    expired += 1
        if deleted or expired:
            log.info("retention: deleted %d job folders and %d expired uploads", len(deleted), expired)
        return deleted

    def start(self) -> threading.Thread:
        """Run :meth:`enforce` every ``interval_s`` on a daemon thread until :meth:`stop`."""
        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                try:
                    self.enforce()
                except OSError as exc:  # a full or read-only disk must not end the server
                    log.warning("retention pass failed: %s", exc)

        thread = threading.Thread(target=loop, name="scenecast-retention", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def restore_jobs(out_dir: Path) -> list[Job]:
    """Finished jobs of an earlier run, oldest first, rebuilt from ``<id>/result.json``, so that their
    results and records stay reachable after a restart. Folders that cannot be read are skipped."""
    jobs = []
    for folder in reversed(job_folders(out_dir)):
        try:
            record = json.loads((folder.path / f"{RESULT_STEM}.json").read_text(encoding="utf-8"))
            job = Job(spec=JobSpec.model_validate(record["spec"]), images={}, input_hashes=dict(record["inputs"]),
                      id=folder.path.name, status="done", created=folder.mtime, started=folder.mtime)
            job.results = [{"index": r["index"], "path": str(folder.path / r["file"]), "width": r["width"],
                            "height": r["height"], "sha256": r["sha256"]} for r in record["results"]]
            job.record = {k: v for k, v in record.items() if k != "results"}
        except Exception as exc:  # noqa: BLE001 - an older or damaged record: left to the caps
            log.debug("not restoring %s: %s", folder.path.name, exc)
            continue
        job.finished_at = folder.mtime
        job.events.append("done", results=job.public_results())
        job.finished.set()
        jobs.append(job)
    return jobs
