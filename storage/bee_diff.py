"""Diff two versions of a Bee's tree, skipping every subtree the two share.

Copy-on-write means a subtree untouched between two versions is the very same
node reference in both. Each side is walked as a lazy, ordered stream of
"subtree" and "key" items; when both streams show the same subtree next, it is
skipped unread, so a diff costs about the nodes that changed, not the size of
the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from storage.bee_node import Child, Ref
from storage.bee_tree import NodeSource, resolve

KeyRef = tuple[bytes, Ref, bytes | None]
"""A key, its entry reference and its inline value (None: stored in the entry only)."""


class _Sub:
    """A subtree not read yet; its keys lie strictly between ``low`` and ``high`` (None: open)."""

    __slots__ = ("child", "high", "low")

    def __init__(self, child: Child, low: bytes | None, high: bytes | None) -> None:
        self.child, self.low, self.high = child, low, high

    def wider_than(self, other: _Sub) -> bool:
        low_ok = self.low is None or (other.low is not None and self.low <= other.low)
        high_ok = self.high is None or (other.high is not None and self.high >= other.high)
        return low_ok and high_ok

    def after(self, key: bytes, reverse: bool) -> bool:
        """Whether every key of this subtree comes after ``key`` in walk order."""
        if reverse:
            return self.high is not None and key >= self.high
        return self.low is not None and key <= self.low


class _Bounds:
    __slots__ = ("high", "high_inclusive", "low", "low_inclusive")

    def __init__(
        self, low: bytes | None, low_inclusive: bool, high: bytes | None, high_inclusive: bool
    ) -> None:
        self.low, self.low_inclusive = low, low_inclusive
        self.high, self.high_inclusive = high, high_inclusive

    def holds(self, key: bytes) -> bool:
        low, high = self.low, self.high
        if low is not None and (key < low or (key == low and not self.low_inclusive)):
            return False
        return high is None or key < high or (key == high and self.high_inclusive)

    def meets(self, low: bytes | None, high: bytes | None) -> bool:
        """Whether keys strictly between ``low`` and ``high`` can fall in these bounds."""
        if high is not None and self.low is not None and high <= self.low:
            return False
        return not (low is not None and self.high is not None and low >= self.high)


_Item = _Sub | KeyRef


class _Stream:
    """One side of the diff: the tree as a stack of pending items, next item last."""

    def __init__(self, src: NodeSource, root: Child | None, bounds: _Bounds, reverse: bool):
        self.src = src
        self.bounds = bounds
        self.reverse = reverse
        self.stack: list[_Item] = [] if root is None else [_Sub(root, None, None)]

    def peek(self) -> _Item | None:
        return self.stack[-1] if self.stack else None

    async def expand(self) -> None:
        sub = self.stack.pop()
        assert isinstance(sub, _Sub)
        node = await resolve(self.src, sub.child)
        keys, bounds = node.keys, self.bounds
        items: list[_Item] = []
        for i in range(len(keys) + 1):
            if node.children:
                low = keys[i - 1] if i > 0 else sub.low
                high = keys[i] if i < len(keys) else sub.high
                if bounds.meets(low, high):
                    items.append(_Sub(node.children[i], low, high))
            if i < len(keys) and bounds.holds(keys[i]):
                items.append((keys[i], node.values[i], node.inline[i]))
        if not self.reverse:
            items.reverse()
        self.stack += items


async def diff(
    src: NodeSource,
    left: Child | None,
    right: Child | None,
    low: bytes | None = None,
    low_inclusive: bool = True,
    high: bytes | None = None,
    high_inclusive: bool = False,
    reverse: bool = False,
) -> AsyncIterator[tuple[KeyRef | None, KeyRef | None]]:
    """Yield ``(left, right)`` for every key whose entry differs; a missing side is None."""
    bounds = _Bounds(low, low_inclusive, high, high_inclusive)
    a = _Stream(src, left, bounds, reverse)
    b = _Stream(src, right, bounds, reverse)
    while True:
        x, y = a.peek(), b.peek()
        if isinstance(x, _Sub):
            if isinstance(y, _Sub):
                if x.child == y.child:  # shared subtree: identical, skip it unread
                    a.stack.pop()
                    b.stack.pop()
                elif x.wider_than(y):
                    await a.expand()
                else:
                    await b.expand()
                continue
            if y is None or not x.after(y[0], reverse):
                await a.expand()
                continue
            b.stack.pop()
            yield None, y
            continue
        if isinstance(y, _Sub):
            if x is None or not y.after(x[0], reverse):
                await b.expand()
                continue
            a.stack.pop()
            yield x, None
            continue
        if x is None and y is None:
            return
        if y is None or (x is not None and (x[0] > y[0] if reverse else x[0] < y[0])):
            a.stack.pop()
            yield x, None
        elif x is None or x[0] != y[0]:
            b.stack.pop()
            yield None, y
        else:
            a.stack.pop()
            b.stack.pop()
            if x[1] != y[1]:
                yield x, y
