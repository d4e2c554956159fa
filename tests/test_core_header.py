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
).flatmap(lambda h: st.integers(0, h.length).map(lambda a: h._replace(appended_from=a)))


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
    if data[0] == 1:  # version 1 (no appended run) decodes, and is written as version 2
        assert h.appended_from == h.length and Header.decode(h.encode()) == h
    else:
        assert h.encode() == data


def test_version_1_header_has_an_empty_appended_run() -> None:
    v2 = Header(1, 2, 30, 4, b"s" * 64, None, 10).encode()
    v1 = b"\x01" + v2[1:30] + v2[38:]  # no appended_from field
    assert Header.decode(v1) == Header(1, 2, 30, 4, b"s" * 64, None, 30)
    assert Header.decode(v2).appended_from == 10
    with pytest.raises(DecodeError):  # a run cannot start past the length
        Header.decode(Header(1, 2, 30, 4, b"", None, 31).encode())


def test_truncated_header_is_a_decode_error() -> None:
    raw = Header(1, 2, 3, 4, b"s" * 64, b"k" * 64).encode()
    for n in range(len(raw)):
        with pytest.raises(DecodeError):
            Header.decode(raw[:n])
