"""Flat-tree indexing: a binary tree laid out in one array, leaves at even indices.

Block ``i`` is the leaf at index ``2*i``; a node of depth ``d`` covers ``2**d`` leaves and
sits in the middle of their span, so every node index is stable as the log grows. This is
the layout Hypercore uses, which is what lets our tree hashes match it.

All functions are pure, take and return non-negative ints, and raise
:class:`~storage.errors.InvalidArgumentError` on a negative or otherwise impossible input.
"""

from __future__ import annotations

from storage.errors import InvalidArgumentError


def _check(i: int) -> None:
    if i < 0:
        raise InvalidArgumentError(f"flat-tree index must be non-negative, got {i}")


def index(depth: int, offset: int) -> int:
    """The index of the ``offset``-th node (left to right) at ``depth``."""
    _check(depth)
    _check(offset)
    return (offset << (depth + 1)) | ((1 << depth) - 1)


def depth(i: int) -> int:
    """The depth of node ``i`` (leaves are 0): its number of trailing one bits."""
    _check(i)
    return ((i + 1) & -(i + 1)).bit_length() - 1


def offset(i: int) -> int:
    """The position of node ``i`` among the nodes of its depth."""
    return i >> (depth(i) + 1)


def parent(i: int) -> int:
    d = depth(i)
    return index(d + 1, offset(i) >> 1)


def sibling(i: int) -> int:
    d = depth(i)
    return index(d, offset(i) ^ 1)


def uncle(i: int) -> int:
    """The sibling of the parent: the next node a Merkle proof needs after the sibling."""
    return sibling(parent(i))


def children(i: int) -> tuple[int, int] | None:
    """The (left, right) children of ``i``, or ``None`` for a leaf."""
    d = depth(i)
    if d == 0:
        return None
    half = 1 << (d - 1)
    return i - half, i + half


def left_child(i: int) -> int | None:
    c = children(i)
    return None if c is None else c[0]


def right_child(i: int) -> int | None:
    c = children(i)
    return None if c is None else c[1]


def left_span(i: int) -> int:
    """The leftmost leaf under ``i`` (itself for a leaf)."""
    return i - (1 << depth(i)) + 1


def right_span(i: int) -> int:
    """The rightmost leaf under ``i`` (itself for a leaf)."""
    return i + (1 << depth(i)) - 1


def spans(i: int) -> tuple[int, int]:
    return left_span(i), right_span(i)


def count(i: int) -> int:
    """How many nodes (leaves and parents) the subtree rooted at ``i`` holds."""
    return (2 << depth(i)) - 1


def leaf_count(i: int) -> int:
    """How many leaves (blocks) the subtree rooted at ``i`` covers."""
    return 1 << depth(i)


def is_left(i: int) -> bool:
    """Whether ``i`` is the left child of its parent."""
    return offset(i) & 1 == 0


def full_roots(i: int) -> list[int]:
    """The roots of the complete subtrees covering every leaf strictly left of ``i``.

    ``i`` must be a leaf index (even); ``full_roots(2 * length)`` are a log's roots,
    left to right, largest first.
    """
    _check(i)
    if i & 1:
        raise InvalidArgumentError(f"full_roots needs a leaf (even) index, got {i}")
    roots: list[int] = []
    leaves = i >> 1
    start = 0
    while leaves:
        size = 1 << (leaves.bit_length() - 1)  # largest power of two that fits
        roots.append(start + size - 1)
        start += 2 * size
        leaves -= size
    return roots


def root_of(leaf: int, length: int) -> int:
    """The full root of a log of ``length`` blocks that covers flat index ``leaf``."""
    for r in full_roots(2 * length):
        if left_span(r) <= leaf <= right_span(r):
            return r
    raise InvalidArgumentError(f"index {leaf} lies outside a log of length {length}")


def path(leaf: int, root: int) -> list[int]:
    """The sibling indices a proof carries to climb from ``leaf`` up to ``root``."""
    if not left_span(root) <= leaf <= right_span(root):
        raise InvalidArgumentError(f"{leaf} is not under {root}")
    out: list[int] = []
    i = leaf
    while i != root:
        out.append(sibling(i))
        i = parent(i)
    return out
