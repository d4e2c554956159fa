"""storage.packer: packb's bytes from one kept Packer, which lets go of a big buffer."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import packer

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=64)
    | st.text(max_size=32),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=30,
)


def _resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@given(st.lists(values, min_size=1, max_size=8))
def test_a_kept_packer_packs_what_packb_packs(objs: list[Any]) -> None:
    one = packer.Packer()
    for obj in objs:  # in a row: nothing of one pack leaks into the next
        assert one.pack(obj) == msgpack.packb(obj, use_bin_type=True)


def test_a_failed_pack_leaves_nothing_behind() -> None:
    one = packer.Packer()
    with pytest.raises(TypeError):
        one.pack([b"half", object()])
    with pytest.raises(OverflowError):
        one.pack([b"half", 2**64])
    assert one.pack([1]) == msgpack.packb([1])


def test_the_buffer_of_a_big_object_is_let_go() -> None:
    size = 64 * 2**20
    kept = msgpack.Packer(use_bin_type=True)
    before = _resident_mb()
    data = kept.pack(b"x" * size)
    del data
    held = _resident_mb() - before
    assert held > 48  # msgpack's own Packer holds the buffer the big object needed
    del kept

    ours = packer.Packer()
    before = _resident_mb()
    data = ours.pack(b"x" * size)
    assert len(data) > size
    del data
    assert _resident_mb() - before < 16
    assert ours.pack({"small": b"again"}) == msgpack.packb({"small": b"again"})
