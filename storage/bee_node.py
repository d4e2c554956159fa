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

import struct
import sys
from array import array
from operator import itemgetter
from typing import Any, Union, cast

import msgpack

from storage.errors import DecodeError
from storage.packer import pack

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

    Encoding caches, so a put re-encodes its path cheaply (on disk a node is
    immutable, so a put copies its whole path and writes it again):

    - ``head``: the encoding of keys, values and inline (above the leaf a put only
      changes a child pointer);
    - ``tails`` (with ``prefix``): the keys without their shared prefix, as stored;
    - ``craw``: ``children`` as stored, as of the last clean version, with ``kids``
      the positions of the children made dirty since (``None``: not tracked; a put's
      path keeps it, anything that moves children drops it).

    Edits go through :meth:`insert_key` and :meth:`set_value`, which keep the caches in
    step; any other edit of keys, values or inline must call :meth:`unshare` first and
    :meth:`forget` (and drop ``kids`` when it moves children).

    A copy shares ``keys``, ``values``, ``inline`` and ``tails`` with the clean node
    (``shared``) until one of them is edited: above the leaf a put only changes a
    child pointer, so it copies just ``children``.

    ``values`` is an ``array("Q")``: copied, encoded and decoded as one block of memory
    (a list of 64 ints costs 64 reference counts to copy and 64 conversions to encode).
    """

    __slots__ = (
        "children",
        "craw",
        "dirty",
        "head",
        "inline",
        "keys",
        "kids",
        "prefix",
        "shared",
        "tails",
        "values",
    )

    def __init__(
        self,
        keys: list[bytes],
        values: array[int] | list[Ref],
        inline: list[bytes | None],
        children: list[Child],
        dirty: bool = True,
        head: bytes | None = None,
    ) -> None:
        self.keys = keys
        self.values: array[int] = values if type(values) is array else array("Q", values)
        self.inline = inline
        self.children = children
        self.dirty = dirty
        self.head = head
        self.tails: list[bytes] | None = None
        self.prefix = b""
        self.craw: bytes | None = None
        self.kids: tuple[int, ...] | None = None
        self.shared = False

    @property
    def leaf(self) -> bool:
        return not self.children

    def copy(self) -> Node:
        """A dirty copy, the first step of every change (nodes on disk are immutable).

        Only clean nodes are copied, and their children are all references: no dirty kids.
        """
        node = _new_node(Node)  # every slot set here: no __init__ call
        node.keys, node.values, node.inline = self.keys, self.values, self.inline
        node.children, node.dirty, node.head = self.children[:], True, self.head
        node.tails, node.prefix, node.craw, node.kids = self.tails, self.prefix, self.craw, ()
        node.shared = True
        return node

    def unshare(self) -> None:
        """Own ``keys``, ``values``, ``inline`` and ``tails`` (before editing them)."""
        if self.shared:
            self.keys, self.values, self.inline = self.keys[:], self.values[:], self.inline[:]
            tails = self.tails
            if tails is not None:
                self.tails = tails[:]
            self.shared = False

    def forget(self) -> None:
        """Drop the cached encodings of keys, values and inline (after any other edit)."""
        self.head = self.tails = None

    def insert_key(self, i: int, key: bytes, value: Ref, inline: bytes | None) -> None:
        """Insert a key (sorted position ``i``), keeping the caches in step.

        A key that starts with the shared prefix of the first and last keys leaves that
        prefix as long as it was (the keys are sorted), so the encoding stays the same as
        one made from scratch; any other key drops ``tails``.
        """
        if self.shared:
            self.unshare()
        self.keys.insert(i, key)
        self.values.insert(i, value)
        self.inline.insert(i, inline)
        self.head = None
        tails = self.tails
        if tails is not None:
            prefix = self.prefix
            if key.startswith(prefix):
                tails.insert(i, key[len(prefix) :])
            else:
                self.tails = None

    def set_value(self, i: int, value: Ref, inline: bytes | None) -> None:
        """Point key ``i`` at a new entry (keys unchanged)."""
        if self.shared:
            self.unshare()
        self.values[i] = value
        self.inline[i] = inline
        self.head = None

    def __repr__(self) -> str:
        kind = "leaf" if not self.children else "inner"
        return f"Node({kind}, keys={self.keys!r}{', dirty' if self.dirty else ''})"


_new_node = object.__new__
Child = Union[Ref, Node]  # noqa: UP007 (a runtime alias)


def _u64(items: list[int]) -> bytes:
    arr = array("Q", items)
    if _SWAP:
        arr.byteswap()
    return arr.tobytes()


def _raw(arr: array[int]) -> bytes:
    """An ``array("Q")`` as stored: u64 little-endian."""
    if _SWAP:
        arr = arr[:]
        arr.byteswap()
    return arr.tobytes()


def _from_raw(data: bytes) -> array[int]:
    arr = array("Q")
    arr.frombytes(data)
    if _SWAP:
        arr.byteswap()
    return arr


_U64 = struct.Struct("<Q")
_ARRAY5 = b"\x95"  # msgpack: an array of 5 items follows
_EMPTY_BIN = b"\xc4\x00"  # msgpack: b"" (a leaf's children)


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
        keys = node.keys
        tails = node.tails
        if tails is not None:
            prefix = node.prefix
        else:
            # Sorted keys share the prefix of the first and last: store it once.
            cut = _shared_prefix(keys[0], keys[-1])
            if cut:
                prefix = keys[0][:cut]
                tails = list(map(itemgetter(slice(cut, None)), keys))
                if not node.children:  # kept for leaves, where the next put inserts a key
                    node.prefix, node.tails = prefix, tails
            else:
                prefix, tails = b"", keys
        inline = node.inline
        if inline[0] is None and inline.count(None) == len(inline):
            inline = []
        values = node.values
        node.head = head = pack(prefix) + pack(tails) + pack(_raw(values)) + pack(inline)
    children: list[Any] = node.children
    if not children:
        return _ARRAY5 + head + _EMPTY_BIN
    craw, kids = node.craw, node.kids
    if craw is None or kids is None:
        craw = _u64(children)
    elif kids:  # patch the pointers that changed since the clean version
        buf = bytearray(craw)
        for i in kids:
            _U64.pack_into(buf, 8 * i, children[i])
        craw = bytes(buf)
    node.craw = craw
    tail: bytes = pack(craw)
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
    values = _from_raw(raw_values)
    # Entries live in this block or an older one (never the header, block 0).
    if min(values) < 1 << OFFSET_BITS or max(values) >> OFFSET_BITS > seq:
        raise DecodeError(f"{where}: a value points outside the log")
    children = _from_raw(raw_children).tolist() if raw_children else []
    # Children are older than their parent (earlier block, or earlier in this one).
    if children and (min(children) < 1 << OFFSET_BITS or max(children) >= make_ref(seq, offset)):
        raise DecodeError(f"{where}: a child does not point back in the log")
    node = Node(keys, values, inline, cast("list[Child]", children), dirty=False, head=None)
    node.craw = raw_children or None  # exactly what _u64 would make of them
    return node
