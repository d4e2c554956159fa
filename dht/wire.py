"""Strict msgpack: size-capped unpacking and exact type checks for wire fields.

Everything the DHT reads from the network goes through these helpers, so any
malformed input ends as :class:`~storage.errors.DecodeError` and nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import Any

import msgpack

from dht.transport import Address
from storage.errors import DecodeError
from storage.packer import pack as _pack

MAX_HOST_LENGTH = 64
MAX_ARRAY = 64


def pack(obj: Any) -> bytes:
    return _pack(obj)  # not packb: a Packer per call costs more than the packing


def unpack(data: bytes | memoryview, max_size: int) -> Any:
    """Unpack exactly one msgpack object of at most ``max_size`` bytes, no maps or exts."""
    if len(data) > max_size:
        raise DecodeError(f"{len(data)} bytes is over the {max_size} byte limit")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=MAX_HOST_LENGTH,
            max_bin_len=max_size,
            max_array_len=MAX_ARRAY,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises many types (ExtraData, ValueError, ...)
        raise DecodeError(f"bad msgpack: {e}") from e


def array(obj: Any, length: int | None = None, max_length: int = MAX_ARRAY) -> list[Any]:
    if not isinstance(obj, list):
        raise DecodeError("expected an array")
    if length is not None and len(obj) != length:
        raise DecodeError(f"expected {length} fields, got {len(obj)}")
    if len(obj) > max_length:
        raise DecodeError(f"array of {len(obj)} is over {max_length}")
    return obj


def integer(obj: Any, low: int = 0, high: int = 2**64 - 1) -> int:
    if type(obj) is not int or not low <= obj <= high:  # not bool, not a subclass
        raise DecodeError("expected an integer in range")
    return obj


def binary(obj: Any, size: int | None = None, max_size: int | None = None) -> bytes:
    if type(obj) is not bytes:
        raise DecodeError("expected bytes")
    if size is not None and len(obj) != size:
        raise DecodeError(f"expected {size} bytes, got {len(obj)}")
    if max_size is not None and len(obj) > max_size:
        raise DecodeError(f"{len(obj)} bytes is over {max_size}")
    return obj


def optional_binary(obj: Any, size: int | None = None, max_size: int | None = None) -> bytes | None:
    return None if obj is None else binary(obj, size, max_size)


@lru_cache(maxsize=16384)
def _pack_host(host: str) -> bytes | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
    return None


@lru_cache(maxsize=16384)
def pack_address(addr: Address) -> Any:
    """IPv4 as 6 bytes, IPv6 as 18 (address + big-endian port); other hosts as [str, port].

    Cached: every reply packs up to k node addresses. (The list form is shared between
    callers, so it must not be modified.)"""
    packed = _pack_host(addr[0])
    if packed is None:
        return [addr[0], addr[1]]
    return packed + addr[1].to_bytes(2, "big")


@lru_cache(maxsize=16384)
def _unpack_packed(obj: bytes) -> Address:
    if len(obj) == 6:
        host = socket.inet_ntop(socket.AF_INET, obj[:4])
    elif len(obj) == 18:
        host = str(ipaddress.IPv6Address(obj[:16]))  # the same spelling node ids use
    else:
        raise DecodeError("an address is 6 or 18 bytes")
    port = int.from_bytes(obj[-2:], "big")
    if not 0 < port < 65536:
        raise DecodeError("bad port")
    return (host, port)


def unpack_address(obj: Any) -> Address:
    if isinstance(obj, bytes):
        return _unpack_packed(obj)
    host_obj, port_obj = array(obj, 2)
    if not isinstance(host_obj, str) or not 0 < len(host_obj) <= MAX_HOST_LENGTH:
        raise DecodeError("bad host")
    if not host_obj.isprintable() or any(c.isspace() for c in host_obj):
        raise DecodeError("bad host")
    port = integer(port_obj)
    if not 0 < port < 65536:
        raise DecodeError("bad port")
    return (host_obj, port)


def unpack_addresses(obj: Any, max_count: int) -> list[Address]:
    if type(obj) is not list or len(obj) > max_count:
        raise DecodeError(f"expected an array of at most {max_count} addresses")
    return [_unpack_packed(a) if type(a) is bytes else unpack_address(a) for a in obj]
