"""The B-tree algorithms of a Bee: lookup, ordered iteration, and copy-on-write insert/delete.

Nodes on disk are immutable, so a change copies the path from the root to the
changed node into dirty in-memory nodes (``Node.copy``) and edits those; the
write then encodes just the dirty nodes into one block. Within a batch a dirty
node is edited in place, so a batch of many puts encodes each touched node once,
not once per put.

A write takes the clean nodes it copies out of the node cache (``take``): once it
commits they are superseded (only a checkout of an older version reads them again,
from disk then), and freeing them now, while they are warm in the CPU cache, costs
far less than evicting them cold thousands of writes later (about 6 us of a ~64 us
put at 100k keys). If the write is discarded, the next read loads them again.

Classic B-tree (keys and values in inner nodes too) with at most ``max_keys``
keys per node. Splits are even, except at the right (left) edge of the tree when
the new key is the largest (smallest): then the old node stays full and the new
one starts with one key, so ascending inserts fill nodes to the brim instead of
half. Only leaves carry inline values; a key moving into an inner node keeps just
its entry reference. Deletes borrow from or merge with a sibling when a node drops below
``max_keys // 2`` keys; no node but the root is ever empty.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator
from typing import Protocol

from storage.bee_node import Child, Node, Ref


class NodeSource(Protocol):
    """Where a tree reads clean nodes from: a cache lookup and a (possibly remote) load."""

    def cached(self, ref: Ref) -> Node | None: ...

    def take(self, ref: Ref) -> Node | None:
        """Like ``cached``, but the node leaves the cache (a write is superseding it)."""
        ...

    async def load(self, ref: Ref) -> Node: ...


async def resolve(src: NodeSource, child: Child) -> Node:
    """The node a child slot stands for (dirty nodes are held directly)."""
    if isinstance(child, Node):
        return child
    node = src.cached(child)
    return node if node is not None else await src.load(child)


async def find(src: NodeSource, root: Child | None, key: bytes) -> tuple[Node, int] | None:
    """The node holding ``key`` and its index there, or None: one node per level."""
    if root is None:
        return None
    cached = src.cached
    child: Child = root
    while True:
        if isinstance(child, Node):
            node = child
        else:
            hit = cached(child)
            node = hit if hit is not None else await src.load(child)
        keys = node.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return node, i
        if not node.children:
            return None
        child = node.children[i]


Span = tuple[Node, int, int]
"""``(node, start, stop)``: keys ``start..stop-1`` of a node, all inside the bounds."""


async def spans(
    src: NodeSource,
    root: Child | None,
    low: bytes | None = None,
    low_inclusive: bool = True,
    high: bytes | None = None,
    high_inclusive: bool = False,
    reverse: bool = False,
) -> AsyncIterator[Span]:
    """Walk the keys within the bounds in order (or reverse) as runs of node slots.

    Seeks to the first key in O(depth) nodes, then walks in order with a stack, so
    only nodes holding keys in the range (and the path to them) are read. A leaf
    comes out as one span; the caller loops over it without an await per key.
    """
    if root is None:
        return
    if reverse:
        async for span in _spans_reverse(src, root, low, low_inclusive, high, high_inclusive):
            yield span
        return
    # Frame (node, i): the next key to yield from this node is keys[i]; for an inner
    # node, child i has been (or is being) walked already.
    stack: list[tuple[Node, int]] = []
    child: Child = root
    while True:
        node = await resolve(src, child)
        if low is None:
            i = 0
        elif low_inclusive:
            i = bisect_left(node.keys, low)
        else:
            i = bisect_right(node.keys, low)
        stack.append((node, i))
        if not node.children:
            break
        child = node.children[i]
    while stack:
        node, i = stack.pop()
        keys = node.keys
        n = len(keys)
        if i >= n:
            continue
        if high is None:
            stop = n
        else:
            stop = bisect_right(keys, high, i) if high_inclusive else bisect_left(keys, high, i)
        if not node.children:
            if i < stop:
                yield node, i, stop
            if stop < n:
                return
            continue
        if stop <= i:
            return
        stack.append((node, i + 1))
        yield node, i, i + 1
        child = node.children[i + 1]
        while True:
            sub = await resolve(src, child)
            stack.append((sub, 0))
            if not sub.children:
                break
            child = sub.children[0]


async def _spans_reverse(
    src: NodeSource,
    root: Child,
    low: bytes | None,
    low_inclusive: bool,
    high: bytes | None,
    high_inclusive: bool,
) -> AsyncIterator[Span]:
    # Frame (node, i): the next key to yield is keys[i - 1]; child i is walked already.
    stack: list[tuple[Node, int]] = []
    child: Child = root
    while True:
        node = await resolve(src, child)
        if high is None:
            i = len(node.keys)
        elif high_inclusive:
            i = bisect_right(node.keys, high)
        else:
            i = bisect_left(node.keys, high)
        stack.append((node, i))
        if not node.children:
            break
        child = node.children[i]
    while stack:
        node, i = stack.pop()
        if i <= 0:
            continue
        keys = node.keys
        if low is None:
            start = 0
        else:
            start = bisect_left(keys, low, 0, i) if low_inclusive else bisect_right(keys, low, 0, i)
        if not node.children:
            if start < i:
                yield node, start, i
            if start > 0:
                return
            continue
        if start >= i:
            return
        stack.append((node, i - 1))
        yield node, i - 1, i
        child = node.children[i - 1]
        while True:
            sub = await resolve(src, child)
            stack.append((sub, len(sub.keys)))
            if not sub.children:
                break
            child = sub.children[-1]


class Tree:
    """A tree being changed: ``root`` is a clean reference, a dirty node, or None (empty)."""

    def __init__(self, src: NodeSource, root: Child | None, max_keys: int) -> None:
        if max_keys < 2:
            raise ValueError("a B-tree node holds at least 2 keys")
        self.src = src
        self.root = root
        self.max_keys = max_keys
        self.minimum = max_keys // 2

    async def get(self, key: bytes) -> tuple[Node, int] | None:
        return await find(self.src, self.root, key)

    async def _dirty_root(self) -> Node:
        # Only deletes come here: they move children, so sealing will look at every child.
        assert self.root is not None
        root = self.root
        if isinstance(root, Node):
            node = root
        else:
            node = self.src.take(root) or await self.src.load(root)
            self.root = node = node.copy()
        node.unshare()  # deletes edit the lists in place
        node.kids = None
        return node

    async def _dirty_child(self, parent: Node, i: int) -> Node:
        # Deletes move children between nodes: sealing will look at every child.
        parent.kids = None
        child = parent.children[i]
        if isinstance(child, Node):
            node = child  # only dirty nodes are ever held in a child slot
        else:
            node = self.src.take(child) or await self.src.load(child)
            parent.children[i] = node = node.copy()
        node.unshare()  # deletes edit the lists in place
        node.kids = None
        return node

    async def put(self, key: bytes, value: Ref, inline: bytes | None) -> None:
        """Insert ``key``, or point it at a new entry."""
        root = self.root
        if root is None:
            self.root = Node([key], [value], [inline], [])
            return
        src = self.src
        if isinstance(root, Node):
            node = root
        else:
            node = src.take(root) or await src.load(root)
            self.root = node = node.copy()
        path: list[tuple[Node, int]] = []
        right_edge = left_edge = True
        while True:
            keys = node.keys
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                node.set_value(i, value, None if node.children else inline)
                return
            children = node.children
            if not children:
                break
            right_edge = right_edge and i == len(keys)
            left_edge = left_edge and i == 0
            path.append((node, i))
            child = children[i]  # _dirty_child, inlined: one coroutine less per level
            if isinstance(child, Node):
                node = child  # only dirty nodes are ever held in a child slot
            else:
                kids = node.kids
                if kids is not None:
                    node.kids = (*kids, i)
                node = src.take(child) or await src.load(child)
                children[i] = node = node.copy()
        node.insert_key(i, key, value, inline)
        while len(node.keys) > self.max_keys:
            n = len(node.keys)
            if right_edge and i == n - 1:
                mid = n - 2  # ascending inserts: keep this node full
            elif left_edge and i == 0:
                mid = 1  # descending inserts: keep the new right node full
            else:
                mid = n // 2
            right = Node(
                node.keys[mid + 1 :],
                node.values[mid + 1 :],
                node.inline[mid + 1 :],
                node.children[mid + 1 :],
            )
            up = node.keys[mid], node.values[mid], None  # inner nodes inline no values
            node.unshare()  # (insert_key did already)
            del node.keys[mid:], node.values[mid:], node.inline[mid:], node.children[mid + 1 :]
            node.forget()
            node.kids = None
            if not path:
                self.root = Node([up[0]], [up[1]], [up[2]], [node, right])
                return
            parent, i = path.pop()
            parent.insert_key(i, *up)
            parent.children.insert(i + 1, right)
            parent.kids = None
            node = parent

    async def delete(self, key: bytes) -> bool:
        """Remove ``key``; False (and nothing made dirty) when it is not there."""
        if await self.get(key) is None:
            return False
        node = await self._dirty_root()
        path: list[tuple[Node, int]] = []
        while True:
            i = bisect_left(node.keys, key)
            if i < len(node.keys) and node.keys[i] == key:
                break
            path.append((node, i))
            node = await self._dirty_child(node, i)
        if node.children:
            # Replace with the predecessor, the largest key of the left subtree.
            holder, at = node, i
            path.append((node, i))
            node = await self._dirty_child(node, i)
            while node.children:
                j = len(node.keys)
                path.append((node, j))
                node = await self._dirty_child(node, j)
            holder.keys[at] = node.keys.pop()
            holder.values[at] = node.values.pop()
            node.inline.pop()
            holder.inline[at] = None
            holder.forget()
        else:
            del node.keys[i], node.values[i], node.inline[i]
        node.forget()
        await self._rebalance(node, path)
        return True

    async def _rebalance(self, node: Node, path: list[tuple[Node, int]]) -> None:
        while path and len(node.keys) < self.minimum:
            parent, i = path.pop()
            parent.forget()
            node.forget()
            if i > 0:
                left = await self._dirty_child(parent, i - 1)
                left.forget()
                if len(left.keys) > self.minimum:  # borrow through the parent
                    node.keys.insert(0, parent.keys[i - 1])
                    node.values.insert(0, parent.values[i - 1])
                    node.inline.insert(0, None)
                    parent.keys[i - 1] = left.keys.pop()
                    parent.values[i - 1] = left.values.pop()
                    left.inline.pop()
                    if left.children:
                        node.children.insert(0, left.children.pop())
                    return
                left.keys.append(parent.keys.pop(i - 1))
                left.values.append(parent.values.pop(i - 1))
                del parent.inline[i - 1]
                left.inline.append(None)
                left.keys += node.keys
                left.values += node.values
                left.inline += node.inline
                left.children += node.children
                del parent.children[i]
            else:
                right = await self._dirty_child(parent, i + 1)
                right.forget()
                if len(right.keys) > self.minimum:
                    node.keys.append(parent.keys[i])
                    node.values.append(parent.values[i])
                    node.inline.append(None)
                    parent.keys[i] = right.keys.pop(0)
                    parent.values[i] = right.values.pop(0)
                    del right.inline[0]
                    if right.children:
                        node.children.append(right.children.pop(0))
                    return
                node.keys.append(parent.keys.pop(i))
                node.values.append(parent.values.pop(i))
                del parent.inline[i]
                node.inline.append(None)
                node.keys += right.keys
                node.values += right.values
                node.inline += right.inline
                node.children += right.children
                del parent.children[i + 1]
            node = parent
        root = self.root
        if isinstance(root, Node) and not root.keys:
            self.root = root.children[0] if root.children else None
