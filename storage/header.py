"""The per-core header record: what a Core must know at open before reading any block."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from storage.errors import DecodeError
from storage.keypair import SECRET_KEY_SIZE, SIGNATURE_SIZE

VERSION = 1
_FIXED = struct.Struct("<BBIQQQ")  # version, flags, core id, fork, length, byte_length
_HAS_SIGNATURE = 1
_HAS_SECRET = 2


@dataclass(frozen=True)
class Header:
    core_id: int
    fork: int = 0
    length: int = 0
    byte_length: int = 0
    signature: bytes = b""
    secret_key: bytes | None = None

    def encode(self) -> bytes:
        flags = (_HAS_SIGNATURE if self.signature else 0) | (_HAS_SECRET if self.secret_key else 0)
        out = _FIXED.pack(VERSION, flags, self.core_id, self.fork, self.length, self.byte_length)
        return out + self.signature + (self.secret_key or b"")

    @classmethod
    def decode(cls, data: bytes) -> Header:
        if len(data) < _FIXED.size:
            raise DecodeError("core header truncated")
        version, flags, core_id, fork, length, byte_length = _FIXED.unpack_from(data)
        if version != VERSION or flags & ~(_HAS_SIGNATURE | _HAS_SECRET):
            raise DecodeError(f"unknown core header version {version} / flags {flags}")
        expected = _FIXED.size + (SIGNATURE_SIZE if flags & _HAS_SIGNATURE else 0)
        expected += SECRET_KEY_SIZE if flags & _HAS_SECRET else 0
        if len(data) != expected:
            raise DecodeError(f"core header is {len(data)} bytes, expected {expected}")
        pos = _FIXED.size
        signature = b""
        if flags & _HAS_SIGNATURE:
            signature = bytes(data[pos : pos + SIGNATURE_SIZE])
            pos += SIGNATURE_SIZE
        secret = bytes(data[pos:]) if flags & _HAS_SECRET else None
        return cls(core_id, fork, length, byte_length, signature, secret)
