"""Pure Merkle-tree steps over :class:`Node` values: growing the roots, climbing a proof path.

Kept free of storage so the same code builds the tree on a writer and checks it on a
replica, and so property tests can run it against brute force.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from storage import flat_tree
from storage.errors import VerificationError
from storage.hashes import leaf_hash, parent_node
from storage.node import Node


def leaf(index: int, block: bytes) -> Node:
    """The leaf node of block number ``index`` (flat index ``2 * index``)."""
    return Node(2 * index, len(block), leaf_hash(block))


def append(
    roots: Sequence[Node], length: int, blocks: Iterable[bytes]
) -> tuple[list[Node], list[Node]]:
    """Add ``blocks`` after ``length`` blocks whose full roots are ``roots``.

    Returns ``(new_nodes, new_roots)``: every node created (leaves and the parents that
    became complete), and the full roots afterwards. ``roots`` is not modified.
    """
    out = list(roots)
    created: list[Node] = []
    i = length
    for block in blocks:
        node = Node(2 * i, len(block), leaf_hash(block))
        created.append(node)
        i += 1
        # Roots shrink strictly in depth left to right; two of equal depth are siblings.
        # (flat_tree.depth inlined: the number of trailing one bits of the index.)
        depth = 0
        while out:
            j = out[-1].index + 1
            if (j & -j).bit_length() - 1 != depth:
                break
            node = parent_node(out.pop(), node)
            created.append(node)
            depth += 1
        out.append(node)
    return created, out


def climb(start: Node, siblings: Sequence[Node]) -> tuple[Node, list[Node]]:
    """Hash ``start`` up through ``siblings`` (each the sibling of the node so far).

    Returns the top node and the parents computed on the way. Raises
    :class:`VerificationError` when a sibling is not where the flat tree says it must be.
    """
    node = start
    made: list[Node] = []
    for sib in siblings:
        if sib.index != flat_tree.sibling(node.index):
            raise VerificationError(f"node {sib.index} is not the sibling of {node.index}")
        node = parent_node(node, sib) if node.index < sib.index else parent_node(sib, node)
        made.append(node)
    return node, made


def byte_length(roots: Iterable[Node]) -> int:
    return sum(r.size for r in roots)
