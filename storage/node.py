"""A Merkle tree node: flat-tree index, byte size of the blocks under it, and its hash."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from storage.errors import DecodeError

_SIZE = struct.Struct("<Q")
ENCODED_SIZE = 8 + 32  # u64 size || 32-byte hash (the index is the LMDB key)


@dataclass(frozen=True, slots=True)
class Node:
    index: int
    size: int
    hash: bytes

    def encode_value(self) -> bytes:
        """The value stored under the node's key: size and hash (the key holds the index)."""
        return _SIZE.pack(self.size) + self.hash


def decode_value(index: int, value: bytes) -> Node:
    if len(value) != ENCODED_SIZE:
        raise DecodeError(f"tree node {index}: {len(value)} bytes, expected {ENCODED_SIZE}")
    return Node(index, _SIZE.unpack_from(value)[0], bytes(value[8:]))
