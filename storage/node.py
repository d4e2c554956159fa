"""A Merkle tree node: flat-tree index, byte size of the blocks under it, and its hash."""

from __future__ import annotations

import struct
from typing import Any

from storage.errors import DecodeError

_SIZE = struct.Struct("<Q")
ENCODED_SIZE = 8 + 32  # u64 size || 32-byte hash (the index is the LMDB key)


class Node:
    """Immutable value: equal when index, size and hash are (and hashable).

    A class of its own rather than a frozen dataclass: every append makes one or two,
    and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) is 1.6x
    slower than setting the slots through their descriptors.
    """

    __slots__ = ("hash", "index", "size")
    index: int
    size: int
    hash: bytes

    def __init__(self, index: int, size: int, hash: bytes) -> None:
        _set_index(self, index)
        _set_size(self, size)
        _set_hash(self, hash)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Node is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Node is immutable: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Node:
            return NotImplemented
        return self.index == other.index and self.size == other.size and self.hash == other.hash

    def __hash__(self) -> int:
        return hash((self.index, self.size, self.hash))

    def __repr__(self) -> str:
        return f"Node(index={self.index!r}, size={self.size!r}, hash={self.hash!r})"

    def __reduce__(self) -> tuple[type[Node], tuple[int, int, bytes]]:  # copy and pickle
        return Node, (self.index, self.size, self.hash)

    def encode_value(self) -> bytes:
        """The value stored under the node's key: size and hash (the key holds the index)."""
        return _SIZE.pack(self.size) + self.hash


_slots: Any = Node
_set_index, _set_size, _set_hash = _slots.index.__set__, _slots.size.__set__, _slots.hash.__set__


def decode_value(index: int, value: bytes) -> Node:
    if len(value) != ENCODED_SIZE:
        raise DecodeError(f"tree node {index}: {len(value)} bytes, expected {ENCODED_SIZE}")
    return Node(index, _SIZE.unpack_from(value)[0], bytes(value[8:]))
