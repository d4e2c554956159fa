"""The hash formulas of a Core, byte for byte those of Hypercore v10.

BLAKE2b-256 with a one-byte type prefix (leaf 0x00, parent 0x01, root 0x02) so a leaf can
never be passed off as a parent; sizes and indices are u64 little-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from hashlib import blake2b

from storage.node import Node

HASH_SIZE = 32
_U64 = struct.Struct("<Q")
_ROOT_ENTRY = struct.Struct("<32sQQ")
_LEAF = b"\x00"
_PARENT = b"\x01"
_ROOT = b"\x02"

TREE_NAMESPACE = blake2b(
    blake2b(b"hypercore", digest_size=32).digest() + b"\x00", digest_size=32
).digest()


def leaf_hash(block: bytes) -> bytes:
    h = blake2b(_LEAF, digest_size=HASH_SIZE)
    h.update(_U64.pack(len(block)))
    h.update(block)
    return h.digest()


def parent_hash(left: Node, right: Node) -> bytes:
    """Hash of two sibling nodes; ``left`` must be the one with the smaller index."""
    return blake2b(
        _PARENT + _U64.pack(left.size + right.size) + left.hash + right.hash,
        digest_size=HASH_SIZE,
    ).digest()


def parent_node(left: Node, right: Node) -> Node:
    return Node((left.index + right.index) // 2, left.size + right.size, parent_hash(left, right))


def tree_hash(roots: Iterable[Node]) -> bytes:
    data = b"".join([_ROOT, *(_ROOT_ENTRY.pack(r.hash, r.index, r.size) for r in roots)])
    return blake2b(data, digest_size=HASH_SIZE).digest()


def signable(tree_hash: bytes, length: int, fork: int) -> bytes:
    """The bytes a Core's Ed25519 signature covers."""
    return TREE_NAMESPACE + tree_hash + _U64.pack(length) + _U64.pack(fork)


def discovery_key(key: bytes) -> bytes:
    """What peers say on the wire instead of the key: proves interest without revealing it."""
    return blake2b(b"hypercore", key=key, digest_size=HASH_SIZE).digest()
