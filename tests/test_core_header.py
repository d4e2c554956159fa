"""The core header record: round trip, and strict decoding of disk bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import DecodeError
from storage.header import Header

headers = st.builds(
    Header,
    core_id=st.integers(0, 2**32 - 1),
    fork=st.integers(0, 2**64 - 1),
    length=st.integers(0, 2**64 - 1),
    byte_length=st.integers(0, 2**64 - 1),
    signature=st.one_of(st.just(b""), st.binary(min_size=64, max_size=64)),
    secret_key=st.one_of(st.none(), st.binary(min_size=64, max_size=64)),
)


@given(headers)
@settings(max_examples=100, deadline=None)
def test_round_trip(h: Header) -> None:
    assert Header.decode(h.encode()) == h


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        h = Header.decode(data)
    except DecodeError:
        return
    assert h.encode() == data


def test_truncated_header_is_a_decode_error() -> None:
    raw = Header(1, 2, 3, 4, b"s" * 64, b"k" * 64).encode()
    for n in range(len(raw)):
        with pytest.raises(DecodeError):
            Header.decode(raw[:n])
