"""Bounded least-recently-used caches: decoded nodes and blocks stay hot, memory stays capped."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Keeps at most ``capacity`` items, dropping the least recently used first."""

    __slots__ = ("_items", "capacity", "hits", "misses")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        items = self._items
        items[key] = value
        items.move_to_end(key)
        if len(items) > self.capacity:
            items.popitem(last=False)

    def take(self, key: K) -> V | None:
        """Remove and return an item (None if absent); not counted as a hit or miss."""
        return self._items.pop(key, None)

    def put_new(self, items: dict[K, V]) -> None:
        """Add items whose keys are new (a key already cached keeps its place)."""
        cache = self._items
        cache.update(items)
        while len(cache) > self.capacity:
            cache.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class WeightedLRU(Generic[K, V]):
    """Keeps items weighing at most ``capacity`` in total (each weighs ``weigh(value)``)."""

    __slots__ = ("_items", "_weigh", "capacity", "weight")

    def __init__(self, capacity: int, weigh: Callable[[V], int]) -> None:
        self.capacity = capacity
        self.weight = 0
        self._weigh = weigh
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        items = self._items
        old = items.pop(key, None)
        if old is not None:
            self.weight -= self._weigh(old)
        items[key] = value
        self.weight += self._weigh(value)
        while self.weight > self.capacity and len(items) > 1:
            _, evicted = items.popitem(last=False)
            self.weight -= self._weigh(evicted)

    def clear(self) -> None:
        self._items.clear()
        self.weight = 0
