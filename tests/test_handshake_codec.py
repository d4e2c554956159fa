"""The relayed connect handshake's codec: round trips, and fuzzing (the payloads come
from whoever asks a DHT node to forward, and from whatever a relay sends back)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import addresses, msgpack_values

from storage.errors import DecodeError
from swarm import control, handshake
from swarm.admission import TICKET_SIZE, Admission
from swarm.errors import peer_text
from swarm.handshake import ConnectReply, ConnectRequest, ReplyStatus

keys = st.binary(min_size=32, max_size=32)
flights = st.binary(max_size=handshake.MAX_FLIGHT)
address_lists = st.lists(addresses, max_size=handshake.MAX_ADDRESSES).map(tuple)
requests = st.builds(ConnectRequest, keys, keys, address_lists, flights)
admissions = st.builds(
    Admission,
    st.binary(min_size=TICKET_SIZE, max_size=TICKET_SIZE),
    st.integers(control.MIN_WINDOW, control.MAX_WINDOW),
)
replies = st.builds(
    ConnectReply,
    st.sampled_from(ReplyStatus),
    address_lists,
    st.text(
        st.characters(codec="utf-8", categories=["L", "N", "P"], include_characters=" "),
        max_size=handshake.MAX_REASON,
    ).filter(lambda text: len(text.encode()) <= handshake.MAX_REASON),
    st.none() | admissions,
    flights,
)


@given(requests)
def test_request_round_trip(request: ConnectRequest) -> None:
    assert handshake.decode_request(handshake.encode_request(request)) == request


@given(replies)
def test_reply_round_trip(reply: ConnectReply) -> None:
    assert handshake.decode_reply(handshake.encode_reply(reply)) == reply


def _decodes_or_rejects(data: bytes) -> None:
    """Any bytes give a request, a reply (which encodes back to the same value) or a
    DecodeError; nothing else escapes."""
    for decode, encode in (
        (handshake.decode_request, handshake.encode_request),
        (handshake.decode_reply, handshake.encode_reply),
    ):
        try:
            message = decode(data)
        except DecodeError:
            continue
        assert decode(encode(message)) == message  # type: ignore[operator, arg-type]


@settings(max_examples=400)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decodes_or_rejects(data)


@settings(max_examples=400)
@given(
    st.sampled_from([handshake.REQUEST_TAG, handshake.REPLY_TAG]),
    st.just(handshake.VERSION) | msgpack_values,
    st.lists(msgpack_values, min_size=3, max_size=7),
)
def test_fuzz_structured(tag: int, version: object, fields: list[object]) -> None:
    _decodes_or_rejects(bytes([tag]) + msgpack.packb([version, *fields], use_bin_type=True))


@settings(max_examples=300)
@given(requests | replies, st.integers(0, 2000), st.binary(min_size=1, max_size=3))
def test_fuzz_mutated_valid_messages(
    message: ConnectRequest | ConnectReply, pos: int, junk: bytes
) -> None:
    if isinstance(message, ConnectRequest):
        data = bytearray(handshake.encode_request(message))
    else:
        data = bytearray(handshake.encode_reply(message))
    pos %= len(data)
    data[pos : pos + len(junk)] = junk
    _decodes_or_rejects(bytes(data))


@pytest.mark.parametrize("reason", ["line\nbreak", "\x1b[31mred", "bell\x07"])
def test_a_reason_that_would_write_to_a_terminal_is_refused(reason: str) -> None:
    # the reason ends up in PeerRejectedError's message, and from there in logs
    fields = [handshake.VERSION, ReplyStatus.REJECTED, [], reason, None, 0, b""]
    wire = bytes([handshake.REPLY_TAG]) + msgpack.packb(fields, use_bin_type=True)
    with pytest.raises(DecodeError, match="reason"):
        handshake.decode_reply(wire)


def test_our_own_reasons_go_out_escaped() -> None:
    # a firewall's reason is the app's text: sent escaped, never refused by the client
    reply = ConnectReply(ReplyStatus.REJECTED, reason="no\nway\x1b" + "!" * 100)
    decoded = handshake.decode_reply(handshake.encode_reply(reply))
    assert decoded.reason == "no\\nway\\x1b" + "!" * (handshake.MAX_REASON - 11)


def test_peer_text_escapes_and_caps() -> None:
    assert peer_text("fine: ok") == "fine: ok"
    assert peer_text("a\r\n\x1b[2Jb\u202e") == "a\\r\\n\\x1b[2Jb\\u202e"
    assert peer_text("x" * 100, limit=10) == "x" * 10


def test_a_long_reason_is_cut_at_a_character_not_refused() -> None:
    # 64 characters of 3 bytes each: over the wire's 64-byte cap on a string
    reply = ConnectReply(ReplyStatus.REJECTED, reason="\u20ac" * 64)
    assert handshake.decode_reply(handshake.encode_reply(reply)).reason == "\u20ac" * 21
