"""swarm.aioquic_patches: the replacements write and read exactly what aioquic's own do."""

from __future__ import annotations

from typing import Any

import pytest
from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic import connection as quic_connection
from hypothesis import given
from hypothesis import strategies as st

from swarm import aioquic_patches, peer_quic

# a tree of blocks: bytes, or (capacity, [children]) pushed as one length-prefixed block
blocks = st.recursive(
    st.binary(max_size=40),
    lambda children: st.tuples(st.integers(1, 3), st.lists(children, max_size=4)),
    max_leaves=20,
)


def _push(buf: Buffer, item: Any, push_block: Any) -> None:
    if isinstance(item, bytes):
        buf.push_bytes(item)
        return
    capacity, children = item
    with push_block(buf, capacity):
        for child in children:
            _push(buf, child, push_block)


def _pull(buf: Buffer, item: Any, pull_block: Any) -> Any:
    if isinstance(item, bytes):
        return buf.pull_bytes(len(item))
    capacity, children = item
    with pull_block(buf, capacity) as length:
        return length, [_pull(buf, child, pull_block) for child in children]


def _pushed(item: Any, push_block: Any) -> bytes:
    buf = Buffer(capacity=4096)
    _push(buf, item, push_block)
    return buf.data


def test_the_patches_are_installed_with_the_aioquic_we_run() -> None:
    assert peer_quic.PATCHED == [
        "tls.push_block",
        "tls.pull_block",
        "tls.push_extension",
        "tls.push_message",
        "quic.connection.EPOCHS",
    ]
    assert tls.push_block is aioquic_patches.PushBlock
    assert tls.pull_block is aioquic_patches.PullBlock
    assert tls.push_extension is aioquic_patches.PushExtension
    assert tls.push_message is aioquic_patches.PushMessage
    assert aioquic_patches.install() == []  # a second install finds nothing to replace


@given(blocks)
def test_push_block_writes_the_bytes_aioquic_writes(item: Any) -> None:
    original = aioquic_patches.ORIGINALS["tls.push_block"]
    assert _pushed(item, aioquic_patches.PushBlock) == _pushed(item, original)


@given(blocks)
def test_pull_block_reads_what_aioquic_reads(item: Any) -> None:
    data = _pushed(item, aioquic_patches.ORIGINALS["tls.push_block"])
    original = aioquic_patches.ORIGINALS["tls.pull_block"]
    assert _pull(Buffer(data=data), item, aioquic_patches.PullBlock) == _pull(
        Buffer(data=data), item, original
    )


@pytest.mark.parametrize("pull_block", ["ours", "aioquic"])
def test_a_block_read_short_is_the_same_alert(pull_block: str) -> None:
    block = aioquic_patches.PullBlock
    if pull_block == "aioquic":
        block = aioquic_patches.ORIGINALS["tls.pull_block"]
    buf = Buffer(data=b"\x00\x03abc")
    with pytest.raises(tls.AlertDecodeError), block(buf, 2) as length:
        assert length == 3
        buf.pull_bytes(2)


def test_an_error_inside_a_pushed_block_goes_on_and_leaves_the_buffer_where_it_was() -> None:
    for block in (aioquic_patches.PushBlock, aioquic_patches.ORIGINALS["tls.push_block"]):
        buf = Buffer(capacity=16)
        with pytest.raises(ValueError, match="inside"), block(buf, 2):
            buf.push_bytes(b"xy")
            raise ValueError("inside")
        assert buf.tell() == 4  # no length written: aioquic's would have sought back


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6))
def test_push_extension_writes_the_bytes_aioquic_writes(extensions: list[Any]) -> None:
    # aioquic's push_extension is a push_uint16 and a push_block (its global, ours by
    # now: the test above holds that one to aioquic's own)
    def pushed(push_extension: Any) -> bytes:
        buf = Buffer(capacity=1024)
        for kind, body in extensions:
            with push_extension(buf, kind):
                buf.push_bytes(body)
        return buf.data

    original = aioquic_patches.ORIGINALS["tls.push_extension"]
    assert pushed(aioquic_patches.PushExtension) == pushed(original)


class _Transcript:
    def __init__(self) -> None:
        self.hashed: list[bytes] = []

    def update_hash(self, data: bytes) -> None:
        self.hashed.append(bytes(data))


@given(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=40)), max_size=6))
def test_push_message_hashes_what_aioquic_hashes(messages: list[tuple[bytes, bytes]]) -> None:
    def hashed(push_message: Any) -> tuple[bytes, list[bytes]]:
        buf, transcript = Buffer(capacity=1024), _Transcript()
        for outside, inside in messages:
            buf.push_bytes(outside)
            with push_message(transcript, buf):
                buf.push_bytes(inside)
        return buf.data, transcript.hashed

    assert hashed(aioquic_patches.PushMessage) == hashed(
        aioquic_patches.ORIGINALS["tls.push_message"]
    )


def test_a_message_that_failed_is_not_hashed() -> None:
    original = aioquic_patches.ORIGINALS["tls.push_message"]
    for push_message in (aioquic_patches.PushMessage, original):
        buf, transcript = Buffer(capacity=16), _Transcript()
        with pytest.raises(ValueError, match="inside"), push_message(transcript, buf):
            buf.push_bytes(b"half")
            raise ValueError("inside")
        assert transcript.hashed == []


def test_epochs_are_aioquic_s_frozensets() -> None:
    original = aioquic_patches.ORIGINALS["quic.connection.EPOCHS"]
    for shortcut in ("I", "IH", "IH1", "IH01", "01", "1", "0"):
        assert quic_connection.EPOCHS(shortcut) == original(shortcut)
        assert isinstance(quic_connection.EPOCHS(shortcut), frozenset)
