"""Key and value codecs of a Bee: what an app hands in <-> the bytes the tree stores.

The tree only ever sees bytes; a codec turns app objects into bytes on the way in
(rejecting what it cannot represent with :class:`EncodingError`) and back on the
way out (raising :class:`DecodeError` on stored bytes it cannot read, since those
came from the disk or the wire).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import msgpack

from storage.errors import DecodeError, EncodingError
from storage.packer import pack


@runtime_checkable
class Codec(Protocol):
    """Anything with ``encode(obj) -> bytes`` and ``decode(bytes) -> obj``."""

    def encode(self, obj: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class BinaryCodec:
    """Bytes as they are (``str`` is accepted and stored as UTF-8)."""

    name = "binary"

    def encode(self, obj: Any) -> bytes:
        if isinstance(obj, bytes):
            return obj
        if isinstance(obj, bytearray | memoryview):
            return bytes(obj)
        if isinstance(obj, str):
            return obj.encode("utf-8")
        raise EncodingError(f"binary encoding takes bytes, not {type(obj).__name__}")

    def decode(self, data: bytes) -> Any:
        return data


class Utf8Codec:
    """Text; byte order of UTF-8 is code point order, so ranges sort as strings do."""

    name = "utf-8"

    def encode(self, obj: Any) -> bytes:
        if not isinstance(obj, str):
            raise EncodingError(f"utf-8 encoding takes str, not {type(obj).__name__}")
        try:
            return obj.encode("utf-8")
        except UnicodeEncodeError as e:
            raise EncodingError(f"not encodable as utf-8: {e.reason}") from e

    def decode(self, data: bytes) -> Any:
        return data.decode("utf-8")


class JsonCodec:
    """Compact JSON in UTF-8; NaN and infinities are rejected (they are not JSON)."""

    name = "json"

    def encode(self, obj: Any) -> bytes:
        try:
            text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            return text.encode("utf-8")
        except (TypeError, ValueError, RecursionError) as e:
            raise EncodingError(f"not encodable as json: {e}") from e

    def decode(self, data: bytes) -> Any:
        return json.loads(data)


class MsgpackCodec:
    """MessagePack: compact and binary-safe."""

    name = "msgpack"

    def encode(self, obj: Any) -> bytes:
        try:
            data = pack(obj)
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            raise EncodingError(f"not encodable as msgpack: {e}") from e
        return data

    def decode(self, data: bytes) -> Any:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)


_BINARY, _UTF8 = BinaryCodec(), Utf8Codec()
_NAMED: dict[str, Codec] = {
    "binary": _BINARY,
    "bytes": _BINARY,
    "utf-8": _UTF8,
    "utf8": _UTF8,
    "json": JsonCodec(),
    "msgpack": MsgpackCodec(),
}


def codec(spec: str | Codec | None) -> Codec:
    """Resolve an encoding name (or ``None`` for binary) or check a custom codec object."""
    if spec is None:
        return _NAMED["binary"]
    if isinstance(spec, str):
        try:
            return _NAMED[spec.lower()]
        except KeyError:
            names = ", ".join(sorted(_NAMED))
            raise EncodingError(f"unknown encoding {spec!r} (known: {names})") from None
    if isinstance(spec, Codec):
        return spec
    raise EncodingError("an encoding is a name or an object with encode() and decode()")


def fast_decoder(c: Codec) -> Callable[[bytes], Any] | None:
    """A C-level decode function for the named codecs (None: identity), for bulk reads.

    Exceptions it raises are the raw ones; callers turn them into DecodeError.
    """
    if isinstance(c, BinaryCodec):
        return None
    if isinstance(c, Utf8Codec):
        return bytes.decode  # UTF-8 by default
    if isinstance(c, JsonCodec):
        return json.loads
    return c.decode


def encode(c: Codec, obj: Any, what: str) -> bytes:
    """Encode with ``c``; any failure (also of a custom codec) becomes :class:`EncodingError`."""
    try:
        data = c.encode(obj)
    except EncodingError:
        raise
    except Exception as e:
        raise EncodingError(f"cannot encode {what}: {e}") from e
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise EncodingError(f"{what} encoder returned {type(data).__name__}, not bytes")


def decode(c: Codec, data: bytes, what: str) -> Any:
    """Decode stored bytes with ``c``; any failure becomes :class:`DecodeError`."""
    try:
        return c.decode(data)
    except DecodeError:
        raise
    except Exception as e:
        raise DecodeError(f"cannot decode stored {what}: {e}") from e
