"""Pipelines: a job is an ordered list of stages (generate, img2img, inpaint) run through one denoise
path of our own, using diffusers' models and schedulers as parts."""

from .interface import JobCancelled, JobResult, Progress
from .job import run_job

__all__ = ["JobCancelled", "JobResult", "Progress", "run_job"]
