"""Flat-tree math against a tree built the slow, obvious way (in-order numbering)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import flat_tree as ft
from storage.errors import InvalidArgumentError

LEVELS = 8  # a perfect tree of 2**8 leaves, 511 nodes


@dataclass
class BruteNode:
    index: int
    depth: int
    leaves: list[int] = field(default_factory=list)
    parent: int | None = None
    children: tuple[int, int] | None = None


def _build() -> dict[int, BruteNode]:
    """Number a perfect binary tree in order; leaves land on even numbers."""
    nodes: dict[int, BruteNode] = {}
    counter = iter(range(1 << (LEVELS + 2)))

    def walk(depth: int) -> int:
        if depth == 0:
            i = next(counter)
            nodes[i] = BruteNode(i, 0, [i])
            return i
        left = walk(depth - 1)
        i = next(counter)
        right = walk(depth - 1)
        nodes[i] = BruteNode(i, depth, nodes[left].leaves + nodes[right].leaves)
        nodes[i].children = (left, right)
        nodes[left].parent = nodes[right].parent = i
        return i

    walk(LEVELS)
    return nodes


TREE = _build()
INNER = [n for n in TREE.values() if n.parent is not None]  # all but the top


def test_brute_force_tree_is_what_we_think() -> None:
    assert sorted(TREE) == list(range(2 ** (LEVELS + 1) - 1))
    assert all(n.index % 2 == 0 for n in TREE.values() if n.depth == 0)


@pytest.mark.parametrize("node", list(TREE.values()), ids=lambda n: str(n.index))
def test_node_functions_match_brute_force(node: BruteNode) -> None:
    i = node.index
    assert ft.depth(i) == node.depth
    assert ft.index(ft.depth(i), ft.offset(i)) == i
    assert ft.children(i) == node.children
    assert (ft.left_span(i), ft.right_span(i)) == (node.leaves[0], node.leaves[-1])
    assert ft.leaf_count(i) == len(node.leaves)
    assert ft.count(i) == 2 * len(node.leaves) - 1
    if node.parent is not None:
        assert ft.parent(i) == node.parent
        pc = TREE[node.parent].children
        assert pc is not None
        assert ft.sibling(i) == (pc[1] if pc[0] == i else pc[0])
        assert ft.is_left(i) == (pc[0] == i)
    offsets = sorted(n.index for n in TREE.values() if n.depth == node.depth)
    assert ft.offset(i) == offsets.index(i)


def _brute_roots(length: int) -> list[int]:
    """Nodes whose leaves all lie below ``length`` but whose parent's do not."""
    full = [
        n.index
        for n in TREE.values()
        if n.leaves[-1] < 2 * length
        and (n.parent is None or TREE[n.parent].leaves[-1] >= 2 * length)
    ]
    return sorted(full)


@given(st.integers(0, 2**LEVELS))
@settings(max_examples=300, deadline=None)
def test_full_roots_match_brute_force(length: int) -> None:
    roots = ft.full_roots(2 * length)
    assert roots == _brute_roots(length)
    # They tile the leaves exactly, largest first.
    covered = [leaf for r in roots for leaf in range(ft.left_span(r), ft.right_span(r) + 1, 2)]
    assert covered == list(range(0, 2 * length, 2))
    assert [ft.depth(r) for r in roots] == sorted((ft.depth(r) for r in roots), reverse=True)


@given(st.integers(1, 2**LEVELS), st.data())
@settings(max_examples=300, deadline=None)
def test_root_of_and_path_climb_to_the_root(length: int, data: st.DataObject) -> None:
    block = data.draw(st.integers(0, length - 1))
    root = ft.root_of(2 * block, length)
    assert root in ft.full_roots(2 * length)
    i = 2 * block
    for sib in ft.path(i, root):
        assert TREE[sib].parent == TREE[i].parent
        i = ft.parent(i)
    assert i == root
    assert ft.uncle(2 * block) == ft.sibling(ft.parent(2 * block))


@given(st.integers(0, 2**62))
@settings(max_examples=300, deadline=None)
def test_big_indices_round_trip(i: int) -> None:
    d, o = ft.depth(i), ft.offset(i)
    assert ft.index(d, o) == i
    assert ft.left_span(i) <= i <= ft.right_span(i)
    left, right = ft.children(ft.parent(i)) or (None, None)
    assert i in (left, right)
    assert ft.sibling(ft.sibling(i)) == i


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(InvalidArgumentError):
        ft.depth(-1)
    with pytest.raises(InvalidArgumentError):
        ft.full_roots(3)
    with pytest.raises(InvalidArgumentError):
        ft.root_of(10, 5)
    with pytest.raises(InvalidArgumentError):
        ft.path(0, 5)
    assert ft.children(4) is None
    assert ft.left_child(3) == 1 and ft.right_child(3) == 5
    assert ft.left_child(2) is None and ft.right_child(2) is None
