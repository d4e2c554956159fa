"""The DHT wire codec: round trips, and fuzzing (any bytes → a message or DecodeError)."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import addresses, msgpack_values

from dht import records, wire
from dht.messages import (
    MAX_DATAGRAM,
    PROBE,
    REQUEST,
    RESPONSE,
    Probe,
    Request,
    Response,
    decode,
    encode,
)
from dht.records import MutableValue, PeerRecord, Removal
from dht.state_file import load_nodes, save_nodes
from storage.errors import DecodeError, VerificationError
from storage.keypair import KeyPair

KP = KeyPair.from_seed(b"s" * 32)
TOPIC = b"t" * 32

b32 = st.binary(min_size=32, max_size=32)
requests = st.builds(
    Request,
    tid=st.integers(0, 2**32 - 1),
    command=st.integers(1, 255),
    id=st.none() | b32,
    token=st.none() | b32,
    target=st.none() | b32,
    value=st.none() | st.binary(max_size=1200),
)
responses = st.builds(
    Response,
    tid=st.integers(0, 2**32 - 1),
    to=addresses,
    id=st.none() | b32,
    token=st.none() | b32,
    nodes=st.lists(addresses, max_size=20),
    error=st.integers(0, 255),
    value=st.none() | st.binary(max_size=1200),
)


@given(requests | responses | st.builds(Probe, st.binary(min_size=16, max_size=16)))
def test_round_trip(msg: Request | Response | Probe) -> None:
    assert decode(encode(msg)) == msg


def _decodes_or_rejects(data: bytes) -> None:
    try:
        msg = decode(data)
    except DecodeError:
        return
    assert isinstance(msg, Request | Response | Probe)
    assert decode(encode(msg)) == msg


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decodes_or_rejects(data)


@settings(max_examples=250)
@given(
    st.sampled_from([REQUEST, RESPONSE, PROBE, 0x04, 0x0F]), st.lists(msgpack_values, max_size=8)
)
def test_fuzz_structured(kind: int, fields: list[object]) -> None:
    _decodes_or_rejects(bytes([kind]) + msgpack.packb(fields, use_bin_type=True))


@settings(max_examples=300)
@given(requests, st.integers(0, 200), st.binary(min_size=1, max_size=3))
def test_fuzz_mutated_valid_messages(msg: Request, pos: int, junk: bytes) -> None:
    data = bytearray(encode(msg))
    pos %= len(data)
    data[pos : pos + len(junk)] = junk
    _decodes_or_rejects(bytes(data))


@settings(max_examples=150)
@given(st.binary(max_size=600) | st.lists(msgpack_values, max_size=6).map(wire.pack))
def test_fuzz_record_decoders(data: bytes) -> None:
    decoders = (
        PeerRecord.decode,
        Removal.decode,
        MutableValue.decode,
        records.decode_mutable_put,
        lambda d: records.decode_lookup_reply(d, 10),
        lambda d: records.decode_forwarded(d, 1200),
    )
    for decoder in decoders:
        with contextlib.suppress(DecodeError):
            decoder(data)


@settings(max_examples=60)
@given(st.lists(st.tuples(b32, st.lists(addresses, max_size=3)), max_size=20))
def test_a_lookup_reply_says_how_many_records_it_holds(
    held: list[tuple[bytes, list[tuple[str, int]]]],
) -> None:
    recs = [PeerRecord(pk, tuple(addrs), 1, b"s" * 64) for pk, addrs in held]
    data = records.encode_lookup_reply(recs)
    assert records.lookup_reply_count(data) == len(recs)
    assert records.decode_lookup_reply(data, 20) == recs
    assert records.lookup_reply_count(records.encode_lookup_reply([])) == 0


@given(st.binary(max_size=40))
def test_a_lookup_reply_count_reads_any_bytes(data: bytes) -> None:
    assert 0 <= records.lookup_reply_count(data) < 2**16


def test_size_and_shape_limits() -> None:
    with pytest.raises(DecodeError):
        decode(b"\x01" + b"\x00" * MAX_DATAGRAM)
    with pytest.raises(DecodeError):
        decode(b"\x01" + msgpack.packb([1, 2, None, None, None, None, None]))  # extra field
    with pytest.raises(DecodeError):
        decode(b"\x01" + msgpack.packb([1, True, None, None, None, None]))  # bool is no int
    with pytest.raises(DecodeError):
        decode(b"\x01" + msgpack.packb([1, 2, b"short", None, None, None]))
    with pytest.raises(DecodeError):
        decode(b"\x02" + msgpack.packb([1, b"\x01\x02\x03\x04\x00\x00", None, None, [], 0, None]))
    with pytest.raises(DecodeError):
        decode(b"\x01" + b"\x91" * 2000)  # deep nesting
    with pytest.raises(DecodeError):
        decode(b"")


def test_records_are_bound_to_their_topic() -> None:
    r = PeerRecord.sign(TOPIC, KP, [("1.2.3.4", 5)], 1000)
    assert PeerRecord.decode(r.encode()) == r
    r.verify(TOPIC)
    with pytest.raises(VerificationError):
        r.verify(b"u" * 32)  # replayed under another topic
    forged = PeerRecord(r.public_key, (("6.6.6.6", 6),), r.timestamp, r.signature)
    with pytest.raises(VerificationError):
        forged.verify(TOPIC)
    removal = Removal.sign(TOPIC, KP, 2000)
    removal.verify(TOPIC)
    with pytest.raises(VerificationError):
        Removal(removal.public_key, 2001, removal.signature).verify(TOPIC)
    # an announcement signature does not pass for a mutable value
    m = MutableValue(KP.public_key, b"", 1000, b"", r.signature)
    with pytest.raises(VerificationError):
        m.verify()


def test_state_file_round_trip_and_corruption(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "table.json"
    assert load_nodes(path) == []
    save_nodes(path, [("127.0.0.1", 5), ("::1", 6)])
    assert load_nodes(path) == [("127.0.0.1", 5), ("::1", 6)]
    path.write_text('{"version": 1, "nodes": [["x", 70000]]}')
    with pytest.raises(DecodeError):
        load_nodes(path)
    path.write_text("not json")
    with pytest.raises(DecodeError):
        load_nodes(path)
