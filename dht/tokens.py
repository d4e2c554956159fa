"""Write tokens: proof that a requester really receives packets at its IP.

A token is a keyed hash of the requester's IP under a secret that rotates; the
previous secret stays valid for one more period, so a token lives between one and
two rotations. Writes (announce, put) and large replies need a valid token, so a
spoofed source address can neither store on another IP's behalf nor draw a large
reply to a victim.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from dht.messages import TOKEN_SIZE
from dht.node_id import canonical_host

MAX_CACHED = 4096
"""Tokens kept per secret: every request checks one and every reply carries one, and
a node hears from few hosts (the cache is dropped whole when full)."""


class Tokens:
    def __init__(self, secret: bytes | None = None) -> None:
        self._current = secret or os.urandom(32)
        self._previous = self._current
        self._issued: dict[str, bytes] = {}
        self._previously: dict[str, bytes] = {}

    def rotate(self, secret: bytes | None = None) -> None:
        self._previous, self._current = self._current, secret or os.urandom(32)
        self._previously, self._issued = self._issued, {}

    def issue(self, host: str) -> bytes:
        token = self._issued.get(host)
        if token is None:
            if len(self._issued) >= MAX_CACHED:
                self._issued.clear()
            token = self._issued[host] = self._token(self._current, host)
        return token

    def check(self, host: str, token: bytes | None) -> bool:
        if token is None or len(token) != TOKEN_SIZE:
            return False
        if hmac.compare_digest(token, self.issue(host)):
            return True
        previous = self._previously.get(host)
        if previous is None:
            previous = self._token(self._previous, host)
        return hmac.compare_digest(token, previous)

    @staticmethod
    def _token(secret: bytes, host: str) -> bytes:
        return hashlib.blake2b(
            canonical_host(host).encode(), key=secret, digest_size=TOKEN_SIZE
        ).digest()
