"""The hash formulas of a Core, byte for byte those of Hypercore v10.

BLAKE2b-256 with a one-byte type prefix (leaf 0x00, parent 0x01, root 0x02) so a leaf can
never be passed off as a parent; sizes and indices are u64 little-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from hashlib import blake2b
from typing import Any

from storage.node import Node

HASH_SIZE = 32
_U64 = struct.Struct("<Q")
_LEAF_HEAD = struct.Struct("<BQ")  # type prefix, size
_ROOT_ENTRY = struct.Struct("<32sQQ")
_LENGTH_FORK = struct.Struct("<QQ")
_PARENT = b"\x01"
_ROOT = b"\x02"

TREE_NAMESPACE = blake2b(
    blake2b(b"hypercore", digest_size=32).digest() + b"\x00", digest_size=32
).digest()


def leaf_hash(block: bytes | memoryview) -> bytes:
    # One update of the block itself: no copy of it, however large.
    h = blake2b(_LEAF_HEAD.pack(0, len(block)), digest_size=HASH_SIZE)
    h.update(block)
    return h.digest()


def parent_hash(left: Node, right: Node) -> bytes:
    """Hash of two sibling nodes; ``left`` must be the one with the smaller index."""
    # Concatenation, not a "32s" struct field: that would pad or cut a wrong-sized hash.
    data = _PARENT + _U64.pack(left.size + right.size) + left.hash + right.hash
    return blake2b(data, digest_size=HASH_SIZE).digest()


def parent_node(left: Node, right: Node) -> Node:
    return Node((left.index + right.index) // 2, left.size + right.size, parent_hash(left, right))


def tree_hash(roots: Iterable[Node]) -> bytes:
    pack = _ROOT_ENTRY.pack
    h = blake2b(_ROOT, digest_size=HASH_SIZE)
    for r in roots:
        h.update(pack(r.hash, r.index, r.size))
    return h.digest()


def tree_hash_states(roots: Sequence[Node], states: Sequence[Any], keep: int) -> list[Any]:
    """Running BLAKE2b states of :func:`tree_hash`: item ``j`` has hashed ``roots[:j]``.

    ``states[: keep + 1]`` (the states of a list that shares its first ``keep`` roots
    with ``roots``) are reused, so an append, which changes only the last roots, hashes
    one or two roots instead of all of them. ``result[-1].digest()`` is the tree hash.
    """
    out = list(states[: keep + 1]) or [blake2b(_ROOT, digest_size=HASH_SIZE)]
    pack = _ROOT_ENTRY.pack
    for r in roots[len(out) - 1 :]:
        h = out[-1].copy()
        h.update(pack(r.hash, r.index, r.size))
        out.append(h)
    return out


def signable(tree_hash: bytes, length: int, fork: int) -> bytes:
    """The bytes a Core's Ed25519 signature covers."""
    return TREE_NAMESPACE + tree_hash + _LENGTH_FORK.pack(length, fork)


def discovery_key(key: bytes) -> bytes:
    """What peers say on the wire instead of the key: proves interest without revealing it."""
    return blake2b(b"hypercore", key=key, digest_size=HASH_SIZE).digest()
