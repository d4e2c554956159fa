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


class Tokens:
    def __init__(self, secret: bytes | None = None) -> None:
        self._current = secret or os.urandom(32)
        self._previous = self._current

    def rotate(self, secret: bytes | None = None) -> None:
        self._previous, self._current = self._current, secret or os.urandom(32)

    def issue(self, host: str) -> bytes:
        return self._token(self._current, host)

    def check(self, host: str, token: bytes | None) -> bool:
        if token is None or len(token) != TOKEN_SIZE:
            return False
        return hmac.compare_digest(token, self._token(self._current, host)) or hmac.compare_digest(
            token, self._token(self._previous, host)
        )

    @staticmethod
    def _token(secret: bytes, host: str) -> bytes:
        return hashlib.blake2b(
            canonical_host(host).encode(), key=secret, digest_size=TOKEN_SIZE
        ).digest()
