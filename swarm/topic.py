"""How people write topics and addresses on a command line."""

from __future__ import annotations

import hashlib
import re

from storage.errors import InvalidArgumentError

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_topic(text: str) -> bytes:
    """64 hex digits are the 32 bytes themselves; any other string is BLAKE2b-256 hashed."""
    if _HEX64.match(text):
        return bytes.fromhex(text)
    if not text:
        raise InvalidArgumentError("a topic cannot be empty")
    return hashlib.blake2b(text.encode(), digest_size=32).digest()


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgumentError(f"not a HOST:PORT address: {text!r}")
    return host, int(port)
