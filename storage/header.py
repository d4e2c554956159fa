"""The per-core header record: what a Core must know at open before reading any block."""

from __future__ import annotations

import struct
from typing import NamedTuple

from storage.errors import DecodeError
from storage.keypair import SECRET_KEY_SIZE, SIGNATURE_SIZE

VERSION = 2
# version, flags, core id, fork, length, byte_length (version 1 ends here), appended_from
_FIXED_V1 = struct.Struct("<BBIQQQ")
_FIXED = struct.Struct("<BBIQQQQ")
_HAS_SIGNATURE = 1
_HAS_SECRET = 2


class Header(NamedTuple):
    """Immutable; a tuple because one is built per append (a frozen dataclass costs ~3x).

    ``appended_from``: blocks ``[appended_from, length)`` are held even where the stored
    bitfield pages do not say so. An append extends this run instead of rewriting a
    bitfield page (that write cost a quarter of the LMDB time of an append); the header
    is written by every append anyway, so the run is exactly as durable as the length.
    A replica's run is always empty (``appended_from == length``).
    """

    core_id: int
    fork: int = 0
    length: int = 0
    byte_length: int = 0
    signature: bytes = b""
    secret_key: bytes | None = None
    appended_from: int = 0

    def encode(self) -> bytes:
        flags = (_HAS_SIGNATURE if self.signature else 0) | (_HAS_SECRET if self.secret_key else 0)
        out = _FIXED.pack(
            VERSION,
            flags,
            self.core_id,
            self.fork,
            self.length,
            self.byte_length,
            self.appended_from,
        )
        return out + self.signature + (self.secret_key or b"")

    @classmethod
    def decode(cls, data: bytes) -> Header:
        if len(data) < _FIXED_V1.size:
            raise DecodeError("core header truncated")
        version, flags, core_id, fork, length, byte_length = _FIXED_V1.unpack_from(data)
        if version not in (1, VERSION) or flags & ~(_HAS_SIGNATURE | _HAS_SECRET):
            raise DecodeError(f"unknown core header version {version} / flags {flags}")
        fixed = _FIXED_V1 if version == 1 else _FIXED
        expected = fixed.size + (SIGNATURE_SIZE if flags & _HAS_SIGNATURE else 0)
        expected += SECRET_KEY_SIZE if flags & _HAS_SECRET else 0
        if len(data) != expected:
            raise DecodeError(f"core header is {len(data)} bytes, expected {expected}")
        appended_from = length if version == 1 else _FIXED.unpack_from(data)[-1]
        if appended_from > length:
            raise DecodeError(f"core header: appended run starts at {appended_from} > {length}")
        pos = fixed.size
        signature = b""
        if flags & _HAS_SIGNATURE:
            signature = bytes(data[pos : pos + SIGNATURE_SIZE])
            pos += SIGNATURE_SIZE
        secret = bytes(data[pos:]) if flags & _HAS_SECRET else None
        return cls(core_id, fork, length, byte_length, signature, secret, appended_from)
