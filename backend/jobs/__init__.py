"""Jobs: the FIFO queue on the one worker thread, job events, cancel, and writing results."""

from .events import Event, EventLog
from .images import ImageError, ImageStore, decode_png, image_id
from .queue import JobQueue, QueueFull, UnknownJob, check_models
from .record import Job

__all__ = ["Event", "EventLog", "ImageError", "ImageStore", "Job", "JobQueue", "QueueFull", "UnknownJob",
           "check_models", "decode_png", "image_id"]
