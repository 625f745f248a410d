"""A least-recently-used cache of loaded models, bounded by the bytes they take in memory.

Base models, ControlNets and previewers (TAESD) are separate entries, so a job that swaps ControlNets
keeps its base model. Three rules keep the budget a real bound:

- **Evict before loading.** ``get`` is told what a model will cost (``estimate``, from its safetensors
  headers, or its size when it was loaded before) and makes room first, so the peak is the budget, not
  the budget plus the new model. After loading, the entry is filed at its measured size.
- **Never evict what a running job holds.** Entries fetched with ``pin=True`` are pinned (a refcount)
  until ``unpin``; eviction skips them. When pinned entries alone exceed the budget the cache goes over
  it, says so in the log, and comes back under as soon as they are released.
- **Only the cache's reference is dropped** on eviction; memory returns once nothing else holds it.
"""

from __future__ import annotations

import collections
import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("scenecast.models")
Key = tuple[str, str]


class ModelCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[Key, tuple[Any, int]] = OrderedDict()
        self._pins: collections.Counter[Key] = collections.Counter()
        self._known: dict[Key, int] = {}  # measured sizes, kept after eviction: the next estimate
        self._lock = threading.RLock()

    def get(self, key: Key, load: Callable[[], Any], size: Callable[[Any], int], estimate: int | None = None,
            pin: bool = False) -> Any:
        """The cached value for ``key``, else make room for ``estimate`` bytes, ``load()`` it and file it at
        ``size(value)`` bytes. With ``pin`` the entry stays until a matching :meth:`unpin`."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                if pin:
                    self._pins[key] += 1
                return self._entries[key][0]
            need = self._known.get(key, estimate or 0)
            self._make_room(need, for_key=key)
        value = load()
        nbytes = size(value)
        with self._lock:
            if key not in self._entries:  # another thread may have loaded it meanwhile: keep the first
                self._entries[key] = (value, nbytes)
            self._known[key] = nbytes
            self._entries.move_to_end(key)
            if pin:
                self._pins[key] += 1
            self._make_room(0, for_key=key)
            return self._entries[key][0]

    def unpin(self, key: Key) -> None:
        """Release one pin of ``key``; a cache left over budget by pinned entries shrinks back."""
        with self._lock:
            if self._pins[key] > 0:
                self._pins[key] -= 1
            if self._pins[key] == 0:
                del self._pins[key]
            self._make_room(0, for_key=None)

    def pinned(self) -> list[Key]:
        with self._lock:
            return [k for k, n in self._pins.items() if n > 0]

    def _make_room(self, need: int, for_key: Key | None) -> None:
        """Evict unpinned entries, least recently used first, until ``need`` more bytes fit the budget."""
        evicted = False
        with self._lock:
            for key in list(self._entries):
                if self._total() + need <= self.budget_bytes:
                    break
                if key == for_key or self._pins.get(key, 0) > 0:
                    continue
                _, nbytes = self._entries.pop(key)
                evicted = True
                log.info("evicted %s %s (%.1f MB) to stay under the %.1f MB budget", key[0], key[1], nbytes / 1e6,
                         self.budget_bytes / 1e6)
            over = self._total() + need - self.budget_bytes
        if over > 0:
            log.warning("models in use need %.1f MB more than the %.1f MB budget (pinned by running jobs: %s)",
                        over / 1e6, self.budget_bytes / 1e6, ", ".join(f"{k[0]}:{k[1]}" for k in self.pinned()) or
                        "none")
        if evicted:
            release_memory()

    def _total(self) -> int:
        return sum(n for _, n in self._entries.values())

    def total_bytes(self) -> int:
        with self._lock:
            return self._total()

    def peek(self, key: Key) -> Any:
        """The cached value for ``key`` or None, without counting as a use (for describing what is loaded)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry[0] if entry is not None else None

    def keys(self) -> list[Key]:
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
