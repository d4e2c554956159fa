"""What a DHT node stores for others: announcements and values, bounded and expiring.

Pure data structure (the caller passes ``now`` from the loop clock and has checked
signatures and tokens). Every entry belongs to groups (its topic, its sender, the
announcing key); each capped group and the store as a whole evict their oldest entry
first when full, so no sender can grow a node's memory past the caps, and one IP
cannot crowd out a topic.

A sender is the IP that stored the entry where IPs are scarce (global addresses),
and its ``ip:port`` where many nodes legitimately share one address (loopback,
private, link-local), which the routing table exempts from its per-IP limits alike.
Counted by IP there, all the peers of a 127.0.0.1 testnet would share one quota:
the 33rd to announce a topic would push the first out.

A key's own topic, ``hash32(public_key)``, is where a server announces itself to be
reachable by its key alone (``Swarm.listen``). Anyone may announce there too, so the
owner's record is kept apart from the topic's cap, and listed first: records of other
keys cannot push it out, or out of a reply, and a connect by key finds it at once.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Generic, TypeVar

from dht.messages import ErrorCode
from dht.node_id import hash32
from dht.records import MutableValue, PeerRecord
from dht.routing_table import ip_limited
from dht.transport import Address

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_MAX_PER_TOPIC = 64
DEFAULT_MAX_PER_IP = 32
DEFAULT_MAX_RECORDS = 4096
DEFAULT_MAX_VALUES = 1024
_BY_KEY = attrgetter("public_key")


def sender(source: Address) -> Hashable:
    """The group a source's entries count against (see the module's docstring)."""
    return source[0] if ip_limited(source[0]) else source


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    groups: tuple[tuple[str, Hashable], ...]
    expires: float


class BoundedIndex(Generic[K, V]):
    """Entries in store order with capped groups; the oldest goes first when full."""

    def __init__(self, max_total: int, caps: dict[str, int | None]) -> None:
        self._max = max_total
        self._caps = caps
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._groups: dict[str, dict[Hashable, OrderedDict[K, None]]] = {g: {} for g in caps}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires <= now:
            return None
        return entry.value

    def put(self, key: K, value: V, groups: Mapping[str, Hashable], expires: float) -> None:
        self.pop(key)
        for name, member in groups.items():
            cap = self._caps[name]
            keys = self._groups[name].get(member)
            while cap is not None and keys is not None and len(keys) >= cap:
                self.pop(next(iter(keys)))
                keys = self._groups[name].get(member)
        while len(self._entries) >= self._max:
            self.pop(next(iter(self._entries)))
        self._entries[key] = _Entry(value, tuple(groups.items()), expires)
        for name, member in groups.items():
            self._groups[name].setdefault(member, OrderedDict())[key] = None

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        for name, member in entry.groups:
            keys = self._groups[name][member]
            del keys[key]
            if not keys:
                del self._groups[name][member]
        return entry.value

    def holds(self, name: str, member: Hashable) -> bool:
        """Whether a group has entries (live or not yet expired away)."""
        return member in self._groups[name]

    def group(self, name: str, member: Hashable, now: float) -> Iterator[V]:
        """Live values of a group, oldest first."""
        for key in self._groups[name].get(member, ()):
            entry = self._entries[key]
            if entry.expires > now:
                yield entry.value

    def expire(self, now: float) -> int:
        """Drop expired entries from the front; returns how many went.

        Entries are appended with ``now + ttl`` under one TTL per index, so store order
        is expiry order and the scan stops at the first live entry.
        """
        count = 0
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            self.pop(key)
            count += 1
        return count


@dataclass(frozen=True, slots=True)
class Announcement:
    topic: bytes
    public_key: bytes
    timestamp: int
    record: PeerRecord | None
    """``None`` for a removal (kept until it expires so a replay cannot resurrect it)."""
    source: Address
    """Where the announcement came from: forwarded messages go there."""


class RecordStore:
    def __init__(
        self,
        record_ttl: float,
        value_ttl: float,
        max_per_topic: int = DEFAULT_MAX_PER_TOPIC,
        max_per_ip: int = DEFAULT_MAX_PER_IP,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_values: int = DEFAULT_MAX_VALUES,
    ) -> None:
        self.record_ttl = record_ttl
        self.value_ttl = value_ttl
        self._announcements: BoundedIndex[tuple[bytes, bytes], Announcement] = BoundedIndex(
            max_records, {"topic": max_per_topic, "owner": None, "sender": max_per_ip, "key": None}
        )
        self._values: BoundedIndex[bytes, bytes | MutableValue] = BoundedIndex(
            max_values, {"sender": max_per_ip}
        )

    def __len__(self) -> int:
        return len(self._announcements) + len(self._values)

    def announce(
        self,
        topic: bytes,
        record: PeerRecord | None,
        public_key: bytes,
        timestamp: int,
        source: Address,
        now: float,
    ) -> ErrorCode:
        """Store (or, with ``record=None``, remove) ``public_key``'s announcement of ``topic``.

        An older or equal timestamp never replaces a newer one (a retransmission of
        the very same record is accepted and refreshes its expiry).
        """
        key = (topic, public_key)
        old = self._announcements.get(key, now)
        if old is not None and (
            old.timestamp > timestamp or (old.timestamp == timestamp and old.record != record)
        ):
            return ErrorCode.STALE
        entry = Announcement(topic, public_key, timestamp, record, source)
        place = "owner" if hash32(public_key) == topic else "topic"
        groups = {place: topic, "sender": sender(source), "key": public_key}
        self._announcements.put(key, entry, groups, now + self.record_ttl)
        return ErrorCode.OK

    def lookup(self, topic: bytes, now: float) -> list[PeerRecord]:
        """The live records of ``topic``, its owner's first (see the module's docstring)."""
        index = self._announcements
        found = [a.record for a in index.group("topic", topic, now) if a.record is not None]
        if index.holds("owner", topic):
            found[:0] = self._owner(topic, now)
        return found

    def sample(self, topic: bytes, now: float, count: int, rng: random.Random) -> list[PeerRecord]:
        """Up to ``count`` live records of ``topic``: its owner's, and a random sample of
        the others when there are more."""
        found = self.lookup(topic, now)
        if len(found) <= count:
            return found
        keep = len(self._owner(topic, now))  # first in the list
        return found[:keep] + rng.sample(found[keep:], count - keep)

    def page(self, topic: bytes, now: float, after: bytes, count: int) -> list[PeerRecord]:
        """Up to ``count`` live records of ``topic`` whose keys follow ``after``, in key
        order (``dht.pages``)."""
        found = (r for r in self.lookup(topic, now) if r.public_key > after)
        return sorted(found, key=_BY_KEY)[:count]

    def _owner(self, topic: bytes, now: float) -> list[PeerRecord]:
        found = self._announcements.group("owner", topic, now)
        return [a.record for a in found if a.record is not None]

    def source_of(self, public_key: bytes, now: float) -> Address | None:
        """The address the newest live announcement by ``public_key`` came from."""
        best: Announcement | None = None
        for a in self._announcements.group("key", public_key, now):
            if a.record is not None and (best is None or a.timestamp > best.timestamp):
                best = a
        return None if best is None else best.source

    def put_immutable(self, key: bytes, value: bytes, source: Address, now: float) -> None:
        self._values.put(key, value, {"sender": sender(source)}, now + self.value_ttl)

    def get_immutable(self, key: bytes, now: float) -> bytes | None:
        value = self._values.get(key, now)
        return value if isinstance(value, bytes) else None

    def put_mutable(
        self, value: MutableValue, cas: int | None, source: Address, now: float
    ) -> ErrorCode:
        """BEP 44 rules: seq must not go back; ``cas`` must name the stored seq (a node
        that stores nothing yet has nothing to contradict and accepts)."""
        old = self.get_mutable(value.target, now)
        if old is not None:
            if cas is not None and cas != old.seq:
                return ErrorCode.CAS_MISMATCH
            if value.seq < old.seq or (value.seq == old.seq and value != old):
                return ErrorCode.SEQ_TOO_LOW
        self._values.put(value.target, value, {"sender": sender(source)}, now + self.value_ttl)
        return ErrorCode.OK

    def get_mutable(self, target: bytes, now: float) -> MutableValue | None:
        value = self._values.get(target, now)
        return value if isinstance(value, MutableValue) else None

    def expire(self, now: float) -> int:
        return self._announcements.expire(now) + self._values.expire(now)
