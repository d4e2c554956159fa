"""Process-wide speedups for aioquic's handshake helpers: the same bytes, less Python.

A connect on loopback is all CPU, and a few small aioquic helpers run dozens of
times per handshake:

* ``tls.push_block`` / ``tls.pull_block`` (a TLS length-prefixed block),
  ``tls.push_extension`` (a block after its type) and ``tls.push_message`` (hashes what
  was pushed into the transcript), about 60 uses per connect together, are
  ``contextlib`` generators; entering and leaving one costs twice what a plain class
  with ``__enter__``/``__exit__`` does.
* ``quic.connection.EPOCHS`` builds a frozenset from a string, 33 times for every
  connection aioquic creates (its table of frame types), always from the same strings.

:func:`install` replaces them with equivalents: the same wire format (RFC 8446
section 3.4: a big-endian length of ``capacity`` bytes before the block), the same
error for a block read short or long, the same frozensets. It only replaces a helper
that still looks like the one it was written against (the names its code uses), so
a changed aioquic keeps its own. Measured in one process, alternating dials: 3 to 4%
of a loopback connect's CPU.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic import connection as quic_connection

ORIGINALS: dict[str, Any] = {}
"""What :func:`install` replaced, by name (tests compare against them)."""


class PushBlock:
    """``with PushBlock(buf, capacity):`` what is pushed inside gets its length before it."""

    __slots__ = ("_buf", "_capacity", "_start")

    def __init__(self, buf: Buffer, capacity: int) -> None:
        self._buf = buf
        self._capacity = capacity
        self._start = 0

    def __enter__(self) -> None:
        buf = self._buf
        self._start = buf.tell() + self._capacity
        buf.seek(self._start)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:  # as the generator: the error goes on, no length is written
            return
        buf = self._buf
        end = buf.tell()
        buf.seek(self._start - self._capacity)
        buf.push_bytes((end - self._start).to_bytes(self._capacity, byteorder="big"))
        buf.seek(end)


class PullBlock:
    """``with PullBlock(buf, capacity) as length:`` the block must be read exactly."""

    __slots__ = ("_buf", "_capacity", "_end")

    def __init__(self, buf: Buffer, capacity: int) -> None:
        self._buf = buf
        self._capacity = capacity
        self._end = 0

    def __enter__(self) -> int:
        buf = self._buf
        length = int.from_bytes(buf.pull_bytes(self._capacity), byteorder="big")
        self._end = buf.tell() + length
        return length

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None and self._buf.tell() != self._end:
            raise tls.AlertDecodeError("extra bytes at the end of a block")


class PushExtension(PushBlock):
    """``with PushExtension(buf, extension_type):`` an extension: its type, then a block."""

    __slots__ = ("_type",)

    def __init__(self, buf: Buffer, extension_type: int) -> None:
        super().__init__(buf, 2)
        self._type = extension_type

    def __enter__(self) -> None:
        self._buf.push_uint16(self._type)
        super().__enter__()


class PushMessage:
    """``with PushMessage(key_schedule, buf):`` what is pushed goes into the transcript."""

    __slots__ = ("_buf", "_schedule", "_start")

    def __init__(self, key_schedule: Any, buf: Buffer) -> None:
        self._schedule = key_schedule
        self._buf = buf
        self._start = 0

    def __enter__(self) -> None:
        self._start = self._buf.tell()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            buf = self._buf
            self._schedule.update_hash(buf.data_slice(self._start, buf.tell()))


def _code_names(helper: Any) -> tuple[str, ...] | None:
    """The names a helper's code uses (a contextlib helper's: its generator's)."""
    code = getattr(getattr(helper, "__wrapped__", helper), "__code__", None)
    return None if code is None else code.co_names


_ALERT = "AlertDecodeError"


def install() -> list[str]:
    """Replace the helpers that are still aioquic's originals; returns their names.
    Idempotent: what was replaced once is left alone."""
    replacements: list[tuple[ModuleType, str, tuple[str, ...], Any]] = [
        (tls, "push_block", ("tell", "seek", "push_bytes", "to_bytes"), PushBlock),
        (tls, "pull_block", ("int", "from_bytes", "pull_bytes", "tell", _ALERT), PullBlock),
        (tls, "push_extension", ("push_uint16", "push_block"), PushExtension),
        (tls, "push_message", ("tell", "update_hash", "data_slice"), PushMessage),
        # a frozenset of a string: pure, so the same string may get the same set
        (quic_connection, "EPOCHS", ("frozenset",), functools.cache(quic_connection.EPOCHS)),
    ]
    installed = []
    for module, name, names, replacement in replacements:
        key = f"{module.__name__.removeprefix('aioquic.')}.{name}"
        original = getattr(module, name)
        if key not in ORIGINALS and _code_names(original) == names:
            ORIGINALS[key] = original
            setattr(module, name, replacement)
            installed.append(key)
    return installed
