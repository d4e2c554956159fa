"""Process-wide speedups for aioquic's handshake helpers: the same bytes, less Python.

A connect on loopback is all CPU, and a few small aioquic helpers run dozens of
times per handshake:

* ``tls.push_block`` / ``tls.pull_block`` (a TLS length-prefixed block, about 60 per
  connect) are ``contextlib`` generators; entering and leaving one costs twice what a
  plain class with ``__enter__``/``__exit__`` does.
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
from types import TracebackType
from typing import Any

from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic import connection as quic_connection

_PUSH_NAMES = ("tell", "seek", "push_bytes", "to_bytes")
_PULL_NAMES = ("int", "from_bytes", "pull_bytes", "tell", "AlertDecodeError")
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

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
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

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None and self._buf.tell() != self._end:
            raise tls.AlertDecodeError("extra bytes at the end of a block")


def _uses(helper: Any, names: tuple[str, ...]) -> bool:
    """Whether a contextlib helper's code is the shape we replace (it names ``names``)."""
    code = getattr(getattr(helper, "__wrapped__", None), "__code__", None)
    return code is not None and code.co_names == names


def install() -> list[str]:
    """Replace the helpers that are still aioquic's originals; returns their names.
    Idempotent: a replaced helper no longer looks like the original."""
    installed = []
    if _uses(tls.push_block, _PUSH_NAMES):
        ORIGINALS["tls.push_block"] = tls.push_block
        setattr(tls, "push_block", PushBlock)  # noqa: B010 - a class where a function was
        installed.append("tls.push_block")
    if _uses(tls.pull_block, _PULL_NAMES):
        ORIGINALS["tls.pull_block"] = tls.pull_block
        setattr(tls, "pull_block", PullBlock)  # noqa: B010
        installed.append("tls.pull_block")
    epochs = quic_connection.EPOCHS
    code = getattr(epochs, "__code__", None)
    if code is not None and code.co_names == ("frozenset",):  # pure: a frozenset of a string
        ORIGINALS["quic.connection.EPOCHS"] = epochs
        quic_connection.EPOCHS = functools.cache(epochs)
        installed.append("quic.connection.EPOCHS")
    return installed
