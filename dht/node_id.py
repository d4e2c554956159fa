"""Node ids bound to addresses, and the XOR metric over 256-bit ids.

A node's id is BLAKE2b-256 of the ``ip:port`` other nodes see it at, so a node
cannot pick where it sits in the keyspace: every receiver recomputes the id from
the packet's source address and ignores a claim that does not match.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from functools import lru_cache

from dht.transport import Address

ID_SIZE = 32
ID_BITS = ID_SIZE * 8


@lru_cache(maxsize=4096)
def canonical_host(host: str) -> str:
    """One spelling per IP address (``::0001`` and ``::1`` hash alike); every request
    and reply asks, for a handful of hosts, so parsed spellings are kept."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


@lru_cache(maxsize=8192)
def node_id(addr: Address) -> bytes:
    """The id a node at ``addr`` must claim."""
    text = f"{canonical_host(addr[0])}:{int(addr[1])}".encode()
    return hashlib.blake2b(text, digest_size=ID_SIZE).digest()


def hash32(data: bytes) -> bytes:
    """BLAKE2b-256: content addresses, topics derived from keys, mutable targets."""
    return hashlib.blake2b(data, digest_size=ID_SIZE).digest()


def distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def bucket_index(own: bytes, other: bytes) -> int:
    """Index of the highest differing bit (0..255); -1 for the same id.

    Bucket 255 holds the half of the keyspace farthest from ``own``; bucket 0 the
    single id that differs only in the last bit.
    """
    return distance(own, other).bit_length() - 1


def random_id_in_bucket(own: bytes, index: int, rng: random.Random) -> bytes:
    """A random id whose highest bit differing from ``own`` is bit ``index``."""
    mask = (1 << index) - 1
    value = int.from_bytes(own, "big") ^ (1 << index)
    value = (value & ~mask) | (rng.getrandbits(index) if index else 0)
    return value.to_bytes(ID_SIZE, "big")
