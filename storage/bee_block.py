"""The blocks of a Bee's core: block 0 is a header, every later block is one write.

A write block holds what that write (a put, a delete, or a slice of a batch)
changed: its entries (key and value, ``None`` for a delete, in write order: the
history of the database is read straight from them), the tree nodes it created
(the changed path, children before parents), and the root of the tree as of
this block. Nodes stay encoded until someone reads them, so reading one value or
one node of a block does not decode the whole changed path.

Header: msgpack ``{"protocol": "peerswarm/bee", "version": 1, "max_keys": int, "metadata": any}``.
Write block: msgpack ``[1, [key, value, ...], [node bytes, ...], root]`` where
``root`` is ``nil`` (empty tree) or a reference as in :mod:`storage.bee_node`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from storage.bee_node import OFFSET_BITS, OFFSET_MASK, Ref
from storage.errors import DecodeError, NotABeeError
from storage.packer import pack

PROTOCOL = "peerswarm/bee"
VERSION = 1
WRITE_TAG = 1


@dataclass(frozen=True)
class Header:
    """What block 0 says: this core is a Bee, in this format version, built with this fan-out."""

    max_keys: int
    metadata: Any = None
    protocol: str = PROTOCOL
    version: int = VERSION


def encode_header(header: Header) -> bytes:
    return pack(
        {
            "protocol": header.protocol,
            "version": header.version,
            "max_keys": header.max_keys,
            "metadata": header.metadata,
        }
    )


def decode_header(data: bytes) -> Header:
    """Read block 0; anything but a Bee header of a version we know is :class:`NotABeeError`."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as e:
        raise NotABeeError("block 0 is not a Bee header (not msgpack)") from e
    if not isinstance(obj, dict) or obj.get("protocol") != PROTOCOL:
        raise NotABeeError(f"block 0 is not a Bee header (expected protocol {PROTOCOL!r})")
    version = obj.get("version")
    if type(version) is not int or version != VERSION:
        raise NotABeeError(f"Bee format version {version!r} is not supported (this is {VERSION})")
    max_keys = obj.get("max_keys")
    if type(max_keys) is not int or max_keys < 2:
        raise NotABeeError(f"Bee header has a bad max_keys {max_keys!r}")
    return Header(max_keys=max_keys, metadata=obj.get("metadata"))


class Block(NamedTuple):
    """A decoded write block; ``nodes`` are still encoded (see :func:`decode_node`).

    (A tuple, not a frozen dataclass: one is made per write, and that costs ~3x less.)
    """

    seq: int
    entries: list[Any]  # flat: key, value (None for a delete), key, value, ...
    nodes: list[bytes]
    root: Ref | None
    size: int

    @property
    def entry_count(self) -> int:
        return len(self.entries) // 2


def encode_block(seq: int, entries: list[Any], nodes: list[bytes], root: Ref | None) -> bytes:
    """Encode a write block that will be block ``seq`` of the core."""
    return pack([WRITE_TAG, entries, nodes, root])


def decode_block(data: bytes, seq: int) -> Block:
    """Decode and validate write block ``seq``; any malformation is a :class:`DecodeError`."""
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=True)
    except Exception as e:
        raise DecodeError(f"block {seq}: not a Bee block (not msgpack: {e})") from e
    if not isinstance(obj, list) or len(obj) != 4 or obj[0] != WRITE_TAG:
        raise DecodeError(f"block {seq}: not a Bee write block")
    _, entries, nodes, root = obj
    if not isinstance(entries, list) or len(entries) % 2:
        raise DecodeError(f"block {seq}: bad entry list")
    if not all(type(k) is bytes for k in entries[0::2]):
        raise DecodeError(f"block {seq}: entry keys must be byte strings")
    if not all(v is None or type(v) is bytes for v in entries[1::2]):
        raise DecodeError(f"block {seq}: entry values must be byte strings or nil")
    if not isinstance(nodes, list) or not all(type(n) is bytes for n in nodes):
        raise DecodeError(f"block {seq}: bad node list")
    if root is not None and (
        type(root) is not int
        or not 1 <= root >> OFFSET_BITS <= seq
        or (root >> OFFSET_BITS == seq and root & OFFSET_MASK >= len(nodes))
    ):
        raise DecodeError(f"block {seq}: bad root reference")
    return Block(seq, entries, nodes, root, len(data))
