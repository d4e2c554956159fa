"""A B-tree node of a Bee and its compact encoding inside a block.

A node holds its keys inline (a search inside a node never fetches another
block) and, for each key, a reference to its entry: the block and position where
that key's value was written. Small values are also copied into leaf nodes
(``inline``), so a ``get`` or a range scan reads only tree nodes, not one block per
key (inner nodes, rewritten on every put below them, keep only the reference). An
inner node also references its children.

A reference is one int, ``seq << 32 | offset``: the block that holds the thing and
its position in that block's entry (or node) list. As ints, references sort the
way blocks were written, which makes the "children are older than their parent"
check (no cycles, ever) a single ``max()``.

Encoded node: msgpack
``[prefix: bin, suffixes: [bin...], values: bin, inline: [bin|nil...], children: bin]``:
each key is ``prefix + suffix`` (sorted keys share the prefix of the first and the
last, stored once); ``values`` and ``children`` are little-endian u64 arrays
(``children`` empty for a leaf); ``inline`` is empty when no value is inline.
"""

from __future__ import annotations

import sys
from array import array
from operator import itemgetter
from typing import Any, Union, cast

import msgpack

from storage.errors import DecodeError

Ref = int
"""``seq << 32 | offset``: a block of the core and a position inside it."""

OFFSET_BITS = 32
OFFSET_MASK = (1 << OFFSET_BITS) - 1
_SWAP = sys.byteorder != "little"


def make_ref(seq: int, offset: int) -> Ref:
    return seq << OFFSET_BITS | offset


class Node:
    """One B-tree node; ``dirty`` nodes belong to a write in progress and may be mutated.

    ``keys``, ``values`` (entry references) and ``inline`` (the value itself when it
    is small, else None) are parallel lists; ``children`` has one more item, or none.
    ``head`` caches the encoding of the first three; whoever edits them clears it
    (a put rewrites its whole path, but above the leaf only a child pointer changed).
    """

    __slots__ = ("children", "dirty", "head", "inline", "keys", "values")

    def __init__(
        self,
        keys: list[bytes],
        values: list[Ref],
        inline: list[bytes | None],
        children: list[Child],
        dirty: bool = True,
        head: bytes | None = None,
    ) -> None:
        self.keys = keys
        self.values = values
        self.inline = inline
        self.children = children
        self.dirty = dirty
        self.head = head

    @property
    def leaf(self) -> bool:
        return not self.children

    def copy(self) -> Node:
        """A dirty copy, the first step of every change (nodes on disk are immutable)."""
        return Node(self.keys[:], self.values[:], self.inline[:], self.children[:], True, self.head)

    def __repr__(self) -> str:
        kind = "leaf" if not self.children else "inner"
        return f"Node({kind}, keys={self.keys!r}{', dirty' if self.dirty else ''})"


Child = Union[Ref, Node]  # noqa: UP007 (a runtime alias)


def _u64(items: list[int]) -> bytes:
    arr = array("Q", items)
    if _SWAP:
        arr.byteswap()
    return arr.tobytes()


def _from_u64(data: bytes) -> list[int]:
    arr = array("Q")
    arr.frombytes(data)
    if _SWAP:
        arr.byteswap()
    return arr.tolist()


_ARRAY5 = b"\x95"  # msgpack: an array of 5 items follows
_packer = msgpack.Packer(use_bin_type=True)


def _shared_prefix(first: bytes, last: bytes) -> int:
    """Length of the common prefix of two byte strings (binary search, C-speed compares)."""
    low, high = 0, min(len(first), len(last))
    while low < high:
        mid = (low + high + 1) // 2
        if first[:mid] == last[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def encode_node(node: Node) -> bytes:
    """Encode a node whose children are all references already (sealed bottom-up)."""
    head = node.head
    if head is None:
        pack = _packer.pack
        keys = node.keys
        # Sorted keys share the prefix of the first and last: store it once.
        cut = _shared_prefix(keys[0], keys[-1])
        suffixes = list(map(itemgetter(slice(cut, None)), keys)) if cut else keys
        inline = node.inline
        if inline.count(None) == len(inline):
            inline = []
        node.head = head = (
            pack(keys[0][:cut]) + pack(suffixes) + pack(_u64(node.values)) + pack(inline)
        )
    children: list[Any] = node.children
    tail: bytes = _packer.pack(_u64(children))
    return _ARRAY5 + head + tail


def decode_node(data: bytes, seq: int, offset: int) -> Node:
    """Decode and validate node ``offset`` of block ``seq``; any malformation is a DecodeError."""
    where = f"node {seq}/{offset}"
    try:
        obj = msgpack.unpackb(data, raw=True, use_list=True)
    except Exception as e:  # msgpack raises many types on garbage
        raise DecodeError(f"{where}: not msgpack ({e})") from e
    if not isinstance(obj, list) or len(obj) != 5:
        raise DecodeError(f"{where}: not a node")
    prefix, keys, raw_values, inline, raw_children = obj
    if not (
        type(prefix) is bytes
        and isinstance(keys, list)
        and type(raw_values) is bytes
        and isinstance(inline, list)
        and type(raw_children) is bytes
    ):
        raise DecodeError(f"{where}: not a node")
    n = len(keys)
    try:
        b"".join(keys)  # a type check at C speed: every key is bytes
    except TypeError:
        raise DecodeError(f"{where}: keys must be byte strings") from None
    if prefix:
        keys = list(map(prefix.__add__, keys))
    if n == 0 or len(set(keys)) != n or keys != sorted(keys):
        raise DecodeError(f"{where}: keys must be one or more, sorted and distinct")
    if not inline:
        inline = [None] * n
    if len(raw_values) != 8 * n or len(inline) != n:
        raise DecodeError(f"{where}: {n} keys but not {n} values")
    if raw_children and len(raw_children) != 8 * (n + 1):
        raise DecodeError(f"{where}: {n} keys need {n + 1} children")
    if not all(v is None or type(v) is bytes for v in inline):
        raise DecodeError(f"{where}: inline values must be byte strings or nil")
    values = _from_u64(raw_values)
    # Entries live in this block or an older one (never the header, block 0).
    if min(values) < 1 << OFFSET_BITS or max(values) >> OFFSET_BITS > seq:
        raise DecodeError(f"{where}: a value points outside the log")
    children = _from_u64(raw_children) if raw_children else []
    # Children are older than their parent (earlier block, or earlier in this one).
    if children and (min(children) < 1 << OFFSET_BITS or max(children) >= make_ref(seq, offset)):
        raise DecodeError(f"{where}: a child does not point back in the log")
    return Node(keys, values, inline, cast("list[Child]", children), dirty=False, head=None)
