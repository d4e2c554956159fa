"""The Bee's block and node codecs and its key/value encodings: round trips and hostile bytes."""

from __future__ import annotations

import bisect
import contextlib
import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.bee_block import (
    PROTOCOL,
    Header,
    decode_block,
    decode_header,
    encode_block,
    encode_header,
)
from storage.bee_encoding import codec, decode, encode
from storage.bee_node import Node, decode_node, encode_node, make_ref
from storage.errors import DecodeError, EncodingError, NotABeeError, PeerswarmError


def _node(keys: list[bytes], seq: int, children: bool = False) -> Node:
    values = [make_ref(max(1, seq - i), i) for i in range(len(keys))]
    inline: list[bytes | None] = [k + b"!" if i % 2 else None for i, k in enumerate(keys)]
    kids: list[Any] = [make_ref(1, i) for i in range(len(keys) + 1)] if children else []
    return Node(keys, values, inline, kids)


def test_node_round_trip() -> None:
    for children in (False, True):
        node = _node([b"a", b"b", b"zz"], seq=9, children=children)
        back = decode_node(encode_node(node), 9, 0)
        assert (back.keys, back.values, back.inline, back.children) == (
            node.keys,
            node.values,
            node.inline,
            node.children,
        )
        assert not back.dirty and back.leaf is not children


def test_node_keys_share_a_stored_prefix() -> None:
    keys = [b"user/%04d" % i for i in range(50)]
    node = Node(keys, [make_ref(7, i) for i in range(50)], [None] * 50, [])
    data = encode_node(node)
    assert data.count(b"user/") == 1  # the shared prefix is stored once
    assert decode_node(data, 60, 0).keys == keys
    assert decode_node(encode_node(_node([b"", b"a"], 3)), 3, 0).keys == [b"", b"a"]
    leafless = Node([b"k"], [1 << 32], [None], [1 << 32, 1 << 32 | 1])
    assert decode_node(encode_node(leafless), 2, 0).inline == [None]


def test_node_head_cache_is_used_and_cleared_by_the_tree() -> None:
    node = _node([b"a", b"b"], seq=3)
    first = encode_node(node)
    assert node.head is not None
    node.keys[0] = b"0"  # a careless edit without clearing head would be stale...
    assert encode_node(node) == first  # ...which is why the tree always clears it
    node.forget()
    assert decode_node(encode_node(node), 3, 0).keys == [b"0", b"b"]


def test_node_caches_follow_insert_and_set_value() -> None:
    keys = [b"key-%03d" % i for i in range(0, 40, 2)]
    node = _node(keys, seq=90)
    encode_node(node)
    node = decode_node(encode_node(node), 90, 0).copy()  # clean -> dirty, caches carried
    encode_node(node)
    for key in [b"key-", b"key-005", b"key-999", b"zzz", b"a"]:  # middle, ends, new prefix
        i = bisect.bisect(node.keys, key)
        node.insert_key(i, key, make_ref(91, i), key)
        node.set_value(1, make_ref(92, 1), None)
        fresh = Node(node.keys[:], node.values[:], node.inline[:], node.children[:])
        assert encode_node(node) == encode_node(fresh)
        assert decode_node(encode_node(node), 92, 0).keys == node.keys


def _raw_node(keys: Any, values: Any, inline: Any, children: Any, prefix: Any = b"") -> bytes:
    data: bytes = msgpack.packb([prefix, keys, values, inline, children], use_bin_type=True)
    return data


def _u64(*refs: int) -> bytes:
    return b"".join(r.to_bytes(8, "little") for r in refs)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (_raw_node([b"b", b"a"], _u64(1 << 32, 1 << 32), [None, None], b""), "sorted"),
        (_raw_node([b"a", b"a"], _u64(1 << 32, 1 << 32), [None, None], b""), "distinct"),
        (_raw_node([], b"", [], b""), "one or more"),
        (_raw_node([b"a", 7], _u64(1 << 32, 1 << 32), [None, None], b""), "byte strings"),
        (_raw_node([b"a"], _u64(1 << 32, 1 << 32), [None], b""), "values"),
        (_raw_node([b"a"], _u64(1 << 32), [None, None], b""), "values"),
        (_raw_node([b"a"], _u64(1 << 32), [5], b""), "inline"),
        (_raw_node([b"a"], _u64(0), [None], b""), "outside"),  # the header block
        (_raw_node([b"a"], _u64(6 << 32), [None], b""), "outside"),  # the future
        (_raw_node([b"a"], _u64(1 << 32), [None], _u64(1 << 32)), "children"),
        (_raw_node([b"a"], _u64(1 << 32), [None], _u64(1 << 32, 5 << 32 | 3)), "point back"),
        (_raw_node([b"a"], _u64(1 << 32), [None], _u64(1 << 32, 5 << 32 | 9)), "point back"),
        (_raw_node([b"a"], 5, [None], b""), "not a node"),
        (_raw_node([b"a"], _u64(1 << 32), [None], b"", prefix=7), "not a node"),
        (_raw_node([b"a", b""], _u64(1 << 32, 1 << 32), [], b"", prefix=b"p"), "sorted"),
        (msgpack.packb({"a": 1}), "not a node"),
        (b"\xc1", "msgpack"),
        (b"", "msgpack"),
    ],
)
def test_node_rejects_malformed(raw: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        decode_node(raw, 5, 3)


def test_child_in_own_block_must_come_first() -> None:
    raw = _raw_node([b"a"], _u64(1 << 32), [None], _u64(5 << 32 | 0, 5 << 32 | 2))
    assert decode_node(raw, 5, 3).children == [5 << 32, 5 << 32 | 2]
    with pytest.raises(DecodeError):
        decode_node(raw, 5, 2)  # a child at its own position: a cycle


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_node_garbage_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_node(data, 7, 1)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.binary(max_size=8)
        | st.text(max_size=4),
        lambda inner: st.lists(inner, max_size=5),
        max_leaves=20,
    )
)
def test_structured_garbage_raises_only_decode_error(obj: Any) -> None:
    data = msgpack.packb(obj, use_bin_type=True)
    for decoder in (
        lambda: decode_node(data, 7, 1),
        lambda: decode_block(data, 7),
        lambda: decode_header(data),
    ):
        with contextlib.suppress(DecodeError):
            decoder()


def test_block_round_trip() -> None:
    nodes = [encode_node(_node([b"k"], 4))]
    data = encode_block(4, [b"k", b"v", b"gone", None], nodes, make_ref(4, 0))
    block = decode_block(data, 4)
    assert block.entries == [b"k", b"v", b"gone", None]
    assert block.nodes == nodes and block.root == make_ref(4, 0) and block.entry_count == 2
    assert decode_block(encode_block(4, [], [], None), 4).root is None
    assert decode_block(encode_block(4, [], [], make_ref(2, 7)), 4).root == make_ref(2, 7)


@pytest.mark.parametrize(
    "obj",
    [
        [2, [], [], None],  # unknown tag
        [1, [b"k"], [], None],  # odd entry list
        [1, ["k", b"v"], [], None],  # str key
        [1, [b"k", 5], [], None],  # int value
        [1, [], ["n"], None],  # node not bytes
        [1, [], [], 4 << 32],  # root in the future (block 4 is this one: no nodes)
        [1, [], [], 9 << 32],  # root in the future
        [1, [], [], 0],  # root in the header block
        [1, [], [], "root"],
        [1, [], []],
        {"protocol": PROTOCOL},
    ],
)
def test_block_rejects_malformed(obj: Any) -> None:
    with pytest.raises(DecodeError):
        decode_block(msgpack.packb(obj, use_bin_type=True), 4)


def test_header_round_trip_and_rejections() -> None:
    header = Header(max_keys=16, metadata={"contentFeed": None, "n": [1, 2]})
    back = decode_header(encode_header(header))
    assert back == header and back.protocol == PROTOCOL and back.version == 1
    for bad in (
        b"hello",
        b"",
        msgpack.packb({"protocol": "hyperbee"}),
        msgpack.packb({"protocol": PROTOCOL, "version": 2, "max_keys": 8}),
        msgpack.packb({"protocol": PROTOCOL, "version": 1, "max_keys": 1}),
        msgpack.packb([1, [], [], None]),  # a write block is not a header
    ):
        with pytest.raises(NotABeeError):
            decode_header(bad)


def test_named_encodings() -> None:
    assert encode(codec("binary"), b"\x00\xff", "k") == b"\x00\xff"
    assert encode(codec("binary"), "é", "k") == "é".encode()
    assert encode(codec("utf-8"), "é", "k") == "é".encode()
    assert codec("utf8") is codec("UTF-8")
    assert decode(codec("json"), encode(codec("json"), {"a": [1, None]}, "v"), "v") == {
        "a": [1, None]
    }
    assert json.loads(encode(codec("json"), {"a": "é"}, "v")) == {"a": "é"}
    assert decode(codec("msgpack"), encode(codec("msgpack"), [b"x", 1], "v"), "v") == [b"x", 1]
    assert codec(None).decode(b"x") == b"x"


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("binary", 5),
        ("utf-8", b"bytes"),
        ("utf-8", "\ud800"),  # a lone surrogate has no UTF-8 form
        ("json", float("nan")),
        ("json", {1, 2}),
        ("msgpack", object()),
    ],
)
def test_encodings_reject_with_encoding_error(name: str, bad: Any) -> None:
    with pytest.raises(EncodingError):
        encode(codec(name), bad, "value")


def test_decoding_bad_stored_bytes_is_decode_error() -> None:
    for name, data in (("utf-8", b"\xff"), ("json", b"{"), ("msgpack", b"\xc1")):
        with pytest.raises(DecodeError):
            decode(codec(name), data, "value")


def test_custom_codec_and_its_failures() -> None:
    class Upper:
        def encode(self, obj: Any) -> bytes:
            return str(obj).upper().encode()

        def decode(self, data: bytes) -> Any:
            return data.decode().lower()

    class Broken:
        def encode(self, obj: Any) -> Any:
            return "not bytes"

        def decode(self, data: bytes) -> Any:
            raise RuntimeError("nope")

    assert encode(codec(Upper()), "ab", "k") == b"AB"
    with pytest.raises(EncodingError, match="not bytes"):
        encode(codec(Broken()), 1, "k")
    with pytest.raises(DecodeError, match="nope"):
        decode(codec(Broken()), b"x", "k")
    for bad in ("no-such-encoding", 42):
        with pytest.raises(EncodingError):
            codec(bad)  # type: ignore[arg-type]
    assert issubclass(EncodingError, PeerswarmError)
