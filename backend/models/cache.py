"""A least-recently-used cache of loaded models, bounded by the bytes their parameters take.

Base models and ControlNets are separate entries, so a job that swaps ControlNets keeps its base model.
Eviction only drops the cache's reference: a job still running with an evicted model keeps it alive
until it finishes, then the memory is freed.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("scenecast.models")


class ModelCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: tuple[str, str], load: Callable[[], Any], size: Callable[[Any], int]) -> Any:
        """The cached value for ``key``, else ``load()`` it, insert it and evict LRU entries over budget."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = load()
        nbytes = size(value)
        with self._lock:
            self._entries[key] = (value, nbytes)
            self._entries.move_to_end(key)
            self._evict(keep=key)
        return value

    def _evict(self, keep: tuple[str, str]) -> None:
        evicted = False
        while self.total_bytes() > self.budget_bytes and len(self._entries) > 1:
            oldest = next(k for k in self._entries if k != keep)
            _, nbytes = self._entries.pop(oldest)
            evicted = True
            log.info("evicted %s %s (%.1f MB) to stay under the %.1f MB budget",
                     oldest[0], oldest[1], nbytes / 1e6, self.budget_bytes / 1e6)
        if evicted:
            release_memory()

    def total_bytes(self) -> int:
        with self._lock:
            return sum(n for _, n in self._entries.values())

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def release_memory() -> None:
    """Hand freed model memory back: modules can sit in reference cycles, and CUDA's caching allocator
    keeps freed blocks for itself unless told otherwise."""
    gc.collect()
    import torch  # noqa: PLC0415 - the cache itself does not need torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
