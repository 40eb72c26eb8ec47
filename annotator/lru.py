"""One bounded, thread-safe LRU map: the only cache of the house.

The engine's image embeddings (bounded in bytes), its free-text embeddings and text queries
(bounded in items), the workspace's decoded images (bytes) and the page's encoded images and
mask payloads (items) are all a :class:`BoundedLRU`. :meth:`BoundedLRU.get_or_compute` is
single-flight: two threads asking for the same missing key compute it once, the second waits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    """A least-recently-used map bounded by item count and/or total size.

    Args:
        max_items: at most this many entries (``None``: no bound on the count).
        max_bytes: at most this total of ``nbytes(value)`` (``None``: no bound on size).
        nbytes: the size of a value in bytes (needed with ``max_bytes``); read each time the
            bound is enforced, so a value may grow (e.g. gain an everything pass's patches).
    Raises:
        ValueError: ``max_bytes`` without ``nbytes``, or a bound below 1.

    The newest entry is never evicted (a value larger than ``max_bytes`` is still held, alone),
    nor a key given as ``keep`` to :meth:`put` / :meth:`touch`. The lock is held to look up,
    insert and evict, never while a value is computed.
    """

    def __init__(
        self, max_items: int | None = None, max_bytes: int | None = None, nbytes: Callable[[V], int] | None = None
    ):
        if max_bytes is not None and nbytes is None:
            raise ValueError("a bound in bytes needs nbytes(value)")
        if (max_items is not None and max_items < 1) or (max_bytes is not None and max_bytes < 0):
            raise ValueError(f"bad bounds: max_items={max_items}, max_bytes={max_bytes}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._nbytes = nbytes
        self._data: OrderedDict[K, V] = OrderedDict()
        self._pending: dict[K, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def keys(self) -> Iterator[K]:
        """The keys, least recently used first (a copy)."""
        with self._lock:
            return iter(list(self._data))

    @property
    def nbytes(self) -> int:
        """Total size of the values in bytes (0 without ``nbytes``)."""
        with self._lock:
            return self._total()

    def _total(self) -> int:
        return 0 if self._nbytes is None else sum(self._nbytes(v) for v in self._data.values())

    def get(self, key: K, default: V | None = None, touch: bool = True) -> V | None:
        """The value of ``key`` (made the most recent unless ``touch=False``), else ``default``."""
        with self._lock:
            value = self._data.get(key)
            if value is None:
                return default
            if touch:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V, keep: K | None = None) -> None:
        """Insert or replace ``key`` as the most recent entry, then evict beyond the bounds
        (least recent first, never ``key`` itself nor ``keep``)."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            self._evict(keep)

    def touch(self, key: K, keep: K | None = None) -> None:
        """Make ``key`` the most recent entry and enforce the bounds again (its value grew)."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self._evict(keep)

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its value, or ``None``."""
        with self._lock:
            return self._data.pop(key, None)

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._data.clear()

    def get_or_compute(self, key: K, compute: Callable[[], V], keep: K | None = None) -> V:
        """The value of ``key``, computed by ``compute()`` and inserted if missing (as
        :meth:`put`). If another thread is computing it, waits for that result instead;
        if that thread fails, this one computes it. ``compute``'s errors propagate and
        nothing is inserted."""
        while True:
            with self._lock:
                value = self._data.get(key)
                if value is not None:
                    self._data.move_to_end(key)
                    return value
                pending = self._pending.get(key)
                mine = pending is None
                if mine:
                    pending = self._pending[key] = threading.Event()
            if not mine:
                pending.wait()
                continue
            try:
                value = compute()
                self.put(key, value, keep)
                return value
            finally:
                with self._lock:
                    self._pending.pop(key).set()

    def _evict(self, keep: K | None) -> None:
        """Drop least recent entries beyond the bounds; the caller holds the lock."""
        total = self._total() if self.max_bytes is not None else 0
        for key in list(self._data)[:-1]:
            over_items = self.max_items is not None and len(self._data) > self.max_items
            over_bytes = self.max_bytes is not None and total > self.max_bytes
            if not (over_items or over_bytes):
                break
            if keep is not None and key == keep:
                continue
            value = self._data.pop(key)
            if self.max_bytes is not None:
                total -= self._nbytes(value)


__all__ = ["BoundedLRU"]
