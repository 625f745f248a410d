"""The worker threads the projection-texturing core splits its chunked numpy work over.

numpy releases the GIL inside ufunc loops and ``take``/``put``, so chunks of a few ten thousand
elements run in parallel on a thread pool (stdlib only: Blender's Python has no numba). Set ``THREADS``
to 1 for strictly serial runs; results do not depend on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

#: Worker threads (the work is memory-bound: more than 4 rarely helps).
THREADS = max(1, min(4, os.cpu_count() or 1))

T = TypeVar("T")
R = TypeVar("R")


def map_chunks(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[work(item) for item in items]``, in order, on up to ``THREADS`` threads."""
    items = list(items)
    if THREADS > 1 and len(items) > 1:
        with ThreadPoolExecutor(min(THREADS, len(items))) as pool:
            return list(pool.map(work, items))
    return [work(item) for item in items]
