"""Incremental root maintenance against hashing each subtree from scratch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import flat_tree as ft
from storage import merkle
from storage.errors import DecodeError, VerificationError
from storage.hashes import leaf_hash, parent_hash, tree_hash
from storage.node import Node, decode_value

blocks_st = st.lists(st.binary(max_size=40), max_size=70)


def _subtree(i: int, blocks: list[bytes]) -> Node:
    """The node at flat index ``i``, hashed recursively from the blocks."""
    kids = ft.children(i)
    if kids is None:
        return Node(i, len(blocks[i // 2]), leaf_hash(blocks[i // 2]))
    left, right = _subtree(kids[0], blocks), _subtree(kids[1], blocks)
    return Node(i, left.size + right.size, parent_hash(left, right))


@given(blocks_st, st.lists(st.integers(1, 9), max_size=20))
@settings(max_examples=150, deadline=None)
def test_incremental_roots_equal_recursive_roots(blocks: list[bytes], cuts: list[int]) -> None:
    roots: list[Node] = []
    every: dict[int, Node] = {}
    length = 0
    # Append in uneven batches: the result must not depend on batching.
    while length < len(blocks):
        step = cuts.pop() if cuts else 1
        made, roots = merkle.append(roots, length, blocks[length : length + step])
        length = min(len(blocks), length + step)
        for n in made:
            assert n.index not in every, "a node is created exactly once"
            every[n.index] = n
        want = [_subtree(r, blocks) for r in ft.full_roots(2 * length)]
        assert roots == want
    # Every complete node was produced, and each equals its recursive hash.
    complete = {
        i for r in ft.full_roots(2 * length) for i in range(ft.left_span(r), ft.right_span(r) + 1)
    }
    assert set(every) == complete
    assert all(every[i] == _subtree(i, blocks) for i in complete)
    assert merkle.byte_length(roots) == sum(map(len, blocks))


def test_append_does_not_touch_its_input() -> None:
    _, roots = merkle.append([], 0, [b"a", b"b", b"c"])
    before = list(roots)
    merkle.append(roots, 3, [b"d"])
    assert roots == before


@given(st.lists(st.binary(max_size=8), min_size=2, max_size=40), st.data())
@settings(max_examples=100, deadline=None)
def test_climb_reaches_the_root_and_rejects_wrong_siblings(
    blocks: list[bytes], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(blocks) - 1))
    root = ft.root_of(2 * i, len(blocks))
    siblings = [_subtree(s, blocks) for s in ft.path(2 * i, root)]
    top, parents = merkle.climb(merkle.leaf(i, blocks[i]), siblings)
    assert top == _subtree(root, blocks)
    assert len(parents) == len(siblings)
    if siblings:
        wrong = [Node(siblings[0].index + 2, siblings[0].size, siblings[0].hash), *siblings[1:]]
        with pytest.raises(VerificationError):
            merkle.climb(merkle.leaf(i, blocks[i]), wrong)


def test_type_prefixes_separate_leaves_from_parents() -> None:
    a = merkle.leaf(0, b"x")
    b = merkle.leaf(1, b"y")
    assert parent_hash(a, b) != parent_hash(b, a)
    assert tree_hash([]) != tree_hash([a])
    assert leaf_hash(b"") != leaf_hash(b"\x00")


def test_node_value_codec() -> None:
    n = Node(7, 123456, bytes(range(32)))
    assert decode_value(7, n.encode_value()) == n
    with pytest.raises(DecodeError):
        decode_value(7, n.encode_value()[:-1])
