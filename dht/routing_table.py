"""The Kademlia routing table: 256 k-buckets over BLAKE2b-256 node ids.

Our own table rather than ``kademlia.routing``: that one assumes 160-bit ids,
reads ``time.monotonic`` directly (we need the loop's clock for virtual time) and
fires its own pings; this one is pure: callers pass ``now`` and act on what it
returns. Bucket ``i`` holds contacts whose highest bit differing from our id is
bit ``i``; buckets are created on first use so an idle node stays small.

A full bucket keeps its old, proven contacts (Kademlia's preference for long-lived
nodes): a newcomer waits in a small replacement cache while the caller pings the
least recently seen contact, which is evicted only if the ping fails.

One IP address may hold only a few slots (``max_per_ip`` in the table,
``max_per_ip_per_bucket`` in one bucket): ids are bound to ``ip:port``, but one host
owns 65,535 ports and could grind them into every bucket, or around one target, to
eclipse it. A newcomer over a limit is not kept (not even as a replacement). The
limits apply to global addresses only: loopback, private, link-local and other
non-global addresses (a LAN, a testnet on 127.0.0.1, the NAT lab's private side) are
exempt, since many nodes legitimately share one such address and an attacker there is
already on the same network.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from dht.node_id import ID_BITS, bucket_index
from dht.transport import Address

DEFAULT_K = 20
DEFAULT_REPLACEMENTS = 4
DEFAULT_MAX_PER_IP = 8
DEFAULT_MAX_PER_IP_PER_BUCKET = 2
RECENTLY_SEEN = 60.0
"""Seconds after hearing from a contact that it is presumed alive: a newcomer to its
full bucket then waits as a replacement, and nobody pings the contact for it (dht-rpc
likewise spares nodes heard from within about a minute). Without this a busy node
pinged a bucket's oldest contact for nearly every stranger that wrote to it: in a
1,000-node virtual network, one request in six was such a ping."""


@lru_cache(maxsize=4096)
def ip_limited(host: str) -> bool:
    """Whether the per-IP limits apply to ``host``: global unicast addresses only
    (an IPv4-mapped IPv6 address counts as its IPv4 address). Asked for every reply
    from a few hosts, so the answers are kept."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(slots=True)
class Contact:
    id: bytes
    address: Address
    last_seen: float
    number: int = field(init=False, repr=False)
    """The id as an integer, for fast XOR distances."""

    def __post_init__(self) -> None:
        self.number = int.from_bytes(self.id, "big")


class _Bucket:
    __slots__ = ("contacts", "replacements", "touched")

    def __init__(self, now: float) -> None:
        self.contacts: OrderedDict[bytes, Contact] = OrderedDict()  # least recently seen first
        self.replacements: OrderedDict[bytes, Contact] = OrderedDict()
        self.touched = now


class RoutingTable:
    def __init__(
        self,
        own_id: bytes,
        k: int = DEFAULT_K,
        replacements: int = DEFAULT_REPLACEMENTS,
        *,
        max_per_ip: int = DEFAULT_MAX_PER_IP,
        max_per_ip_per_bucket: int = DEFAULT_MAX_PER_IP_PER_BUCKET,
    ) -> None:
        self.id = own_id
        self._number = int.from_bytes(own_id, "big")
        self.k = k
        self.max_per_ip = max_per_ip
        self.max_per_ip_per_bucket = max_per_ip_per_bucket
        self._max_replacements = replacements
        self._buckets: dict[int, _Bucket] = {}
        self._all: list[Contact] = []
        """Every contact, in no order: what :meth:`closest` sorts in a small table."""
        self._per_ip: dict[str, int] = {}
        """Contacts per limited IP in the table (not counting replacements)."""

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Contact]:
        for bucket in self._buckets.values():
            yield from bucket.contacts.values()

    def __contains__(self, contact_id: object) -> bool:
        return isinstance(contact_id, bytes) and self.get(contact_id) is not None

    def get(self, contact_id: bytes) -> Contact | None:
        bucket = self._buckets.get(bucket_index(self.id, contact_id))
        return None if bucket is None else bucket.contacts.get(contact_id)

    def add(self, contact_id: bytes, address: Address, now: float) -> Contact | None:
        """Insert or refresh a contact seen alive at ``now``.

        Returns the least recently seen contact of a full bucket, unless it was seen
        within :data:`RECENTLY_SEEN`: the caller should ping it and :meth:`remove` it
        if it does not answer (the newcomer, kept as a replacement, then takes its
        place). Returns ``None`` otherwise.
        """
        index = bucket_index(self.id, contact_id)
        if index < 0:
            return None
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket(now)
        bucket.touched = now
        contact = bucket.contacts.get(contact_id)
        if contact is not None:
            if contact.address[0] != address[0]:
                self._count(contact.address, -1)
                self._count(address, +1)
            contact.address, contact.last_seen = address, now
            bucket.contacts.move_to_end(contact_id)
            return None
        if not self._fits(bucket, address):
            bucket.replacements.pop(contact_id, None)
            return None
        if len(bucket.contacts) < self.k:
            self._insert(bucket, Contact(contact_id, address, now))
            bucket.replacements.pop(contact_id, None)
            return None
        bucket.replacements.pop(contact_id, None)
        bucket.replacements[contact_id] = Contact(contact_id, address, now)
        while len(bucket.replacements) > self._max_replacements:
            bucket.replacements.popitem(last=False)
        head = next(iter(bucket.contacts.values()))
        return head if now - head.last_seen >= RECENTLY_SEEN else None

    def remove(self, contact_id: bytes) -> bool:
        """Drop a contact (dead or lying); the newest replacement takes its slot."""
        index = bucket_index(self.id, contact_id)
        bucket = self._buckets.get(index)
        if bucket is None:
            return False
        bucket.replacements.pop(contact_id, None)
        gone = bucket.contacts.pop(contact_id, None)
        if gone is None:
            return False
        self._all.remove(gone)
        self._count(gone.address, -1)
        while bucket.replacements:
            _, newcomer = bucket.replacements.popitem()
            if self._fits(bucket, newcomer.address):  # others may have filled its IP's quota
                self._insert(bucket, newcomer)
                break
        return True

    def _fits(self, bucket: _Bucket, address: Address) -> bool:
        """Whether one more contact at ``address``'s IP stays within the per-IP limits."""
        host = address[0]
        if not ip_limited(host):
            return True
        if self._per_ip.get(host, 0) >= self.max_per_ip:
            return False
        same = sum(1 for c in bucket.contacts.values() if c.address[0] == host)
        return same < self.max_per_ip_per_bucket

    def _insert(self, bucket: _Bucket, contact: Contact) -> None:
        bucket.contacts[contact.id] = contact
        self._all.append(contact)
        self._count(contact.address, +1)

    def _count(self, address: Address, delta: int) -> None:
        host = address[0]
        if not ip_limited(host):
            return
        count = self._per_ip.get(host, 0) + delta
        if count > 0:
            self._per_ip[host] = count
        else:
            self._per_ip.pop(host, None)

    def count_ip(self, host: str) -> int:
        """Contacts in the table at ``host`` (any address, limited or not)."""
        return sum(1 for c in self if c.address[0] == host)

    def closest(
        self, target: bytes, count: int | None = None, *, ordered: bool = True
    ) -> list[Contact]:
        """The ``count`` (default k) contacts nearest to ``target`` by XOR distance,
        nearest first. ``ordered=False`` skips the sort when the whole table is the
        answer (a querier sorts what it gets anyway, and every request served asks)."""
        count = self.k if count is None else count
        t = int.from_bytes(target, "big")

        def near(c: Contact) -> int:
            return c.number ^ t

        # Every request served asks: sorting a small table beats walking its buckets.
        if len(self._all) <= 4 * count:
            if not ordered and len(self._all) < count:
                return list(self._all)
            return sorted(self._all, key=near)[:count]
        picked: list[Contact] = []
        for index in self._bucket_order(t):
            picked += sorted(self._buckets[index].contacts.values(), key=near)
            if len(picked) >= count:
                break
        return picked[:count]

    def _bucket_order(self, target: int) -> list[int]:
        """The non-empty buckets, nearest to ``target`` first.

        A contact in bucket i agrees with our id above bit i and differs at bit i, so
        its distance to the target has the bits above i of ``own ^ target`` and the
        opposite of its bit i: every bucket's contacts lie in one interval of
        distances, of its own, starting at ``(((own ^ target) >> i) ^ 1) << i``. A big
        table (a large network's: up to k per level of the keyspace) then sorts one or
        two buckets per request, not every contact: at 180 contacts, half the time.
        """
        mask = self._number ^ target
        return sorted(
            (i for i, b in self._buckets.items() if b.contacts),
            key=lambda i: ((mask >> i) ^ 1) << i,
        )

    def stale(self, seen_before: float) -> list[Contact]:
        """Contacts not heard from since ``seen_before``, least recently seen first."""
        old = [c for c in self if c.last_seen < seen_before]
        return sorted(old, key=lambda c: c.last_seen)

    def _populated_from(self) -> int:
        """The bucket of our k-th closest contact. The network has about k·2^(255-i)
        nodes, so every bucket past this one should hold several: an empty one there
        means we missed part of the keyspace, not that it is empty."""
        near = self.closest(self.id, self.k)
        return bucket_index(self.id, near[-1].id) if near else ID_BITS

    def idle_buckets(self, touched_before: float) -> list[int]:
        """Buckets worth a refresh lookup: non-empty ones with no activity since
        ``touched_before``, and empty ones where contacts should be (see above)."""
        populated = self._populated_from()
        return [
            i
            for i in range(self.deepest_bucket(), ID_BITS)
            if ((b := self._buckets.get(i)) is None and i > populated)
            or (b is not None and (b.contacts or i > populated) and b.touched < touched_before)
        ]

    def empty_buckets(self) -> list[int]:
        """Empty buckets where contacts should be (past our k-th closest's bucket)."""
        return [
            i
            for i in range(self._populated_from() + 1, ID_BITS)
            if (b := self._buckets.get(i)) is None or not b.contacts
        ]

    def bucket_size(self, index: int) -> int:
        bucket = self._buckets.get(index)
        return 0 if bucket is None else len(bucket.contacts)

    def touch_bucket(self, index: int, now: float) -> None:
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket(now)
        bucket.touched = now

    def deepest_bucket(self) -> int:
        """The smallest non-empty bucket index (our closest neighbours); ID_BITS if empty."""
        return min((i for i, b in self._buckets.items() if b.contacts), default=ID_BITS)

    def rebased(self, own_id: bytes, now: float) -> RoutingTable:
        """A new table around ``own_id`` (our address changed) holding our contacts."""
        table = RoutingTable(
            own_id,
            self.k,
            self._max_replacements,
            max_per_ip=self.max_per_ip,
            max_per_ip_per_bucket=self.max_per_ip_per_bucket,
        )
        for contact in sorted(self, key=lambda c: c.last_seen):
            table.add(contact.id, contact.address, contact.last_seen)
        for bucket in table._buckets.values():
            bucket.touched = now
        return table
