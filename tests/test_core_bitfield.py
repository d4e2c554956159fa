"""The held-blocks bitfield against a plain set, across page boundaries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.bitfield import PAGE_BITS, PAGE_BYTES, Bitfield

SPAN = 3 * PAGE_BITS + 17
edges = st.sampled_from([0, 1, PAGE_BITS - 1, PAGE_BITS, PAGE_BITS + 1, 2 * PAGE_BITS, SPAN])
pos = st.one_of(st.integers(0, SPAN), edges)
change = st.tuples(pos, pos, st.booleans())


def _runs(model: set[int], start: int, end: int, value: bool) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i in range(start, end):
        if (i in model) == value:
            if out and out[-1][1] == i:
                out[-1] = (out[-1][0], i + 1)
            else:
                out.append((i, i + 1))
    return out


@given(st.lists(change, max_size=12), pos, pos)
@settings(max_examples=80, deadline=None)
def test_bitfield_matches_a_set(changes: list[tuple[int, int, bool]], a: int, b: int) -> None:
    bf = Bitfield()
    model: set[int] = set()
    stored: dict[int, bytes] = {}
    for x, y, value in changes:
        lo, hi = min(x, y), max(x, y)
        pages = bf.changes(lo, hi, value)
        assert all(p is None or len(p) == PAGE_BYTES for p in pages.values())
        if value:
            model |= set(range(lo, hi))
        else:
            model -= set(range(lo, hi))
        # Nothing changes until the pages are applied (after the commit).
        bf.apply(pages)
        for n, page in pages.items():
            if page is None:
                stored.pop(n, None)
            else:
                stored[n] = page
    start, end = min(a, b), max(a, b)
    assert [i for i in range(start, end) if bf.get(i)] == sorted(
        i for i in model if start <= i < end
    )
    assert list(bf.ranges(start, end, True)) == _runs(model, start, end, True)
    assert list(bf.ranges(start, end, False)) == _runs(model, start, end, False)
    assert bf.count(start, end) == len([i for i in model if start <= i < end])
    first_missing = next((i for i in range(start, end) if i not in model), end)
    assert bf.find(start, end, False) == first_missing
    assert bf.end() >= max(model, default=-1) + 1
    # What was persisted page by page reloads to the same bitfield.
    everything = list(bf.ranges(0, SPAN + 1, True))
    assert list(Bitfield(stored).ranges(0, SPAN + 1, True)) == everything
    assert list(bf.copy().ranges(0, SPAN + 1, True)) == everything


def test_sparse_and_huge_indices_stay_cheap() -> None:
    bf = Bitfield()
    far = 10**12
    bf.apply(bf.changes(far, far + 3, True))
    assert list(bf.ranges(0, far + 10, True)) == [(far, far + 3)]
    assert bf.find(0, far + 10, True) == far
    assert bf.find(far, far + 10, False) == far + 3
    assert not bf.get(far - 1) and bf.get(far + 2)
