"""Ed25519 identity: the one key pair that signs logs, announcements and TLS certificates."""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing

from storage.errors import InvalidArgumentError, VerificationError

PUBLIC_KEY_SIZE = 32
SECRET_KEY_SIZE = 64  # libsodium layout: seed || public key
SEED_SIZE = 32
SIGNATURE_SIZE = 64


@dataclass(frozen=True, repr=False)
class KeyPair:
    """An Ed25519 key pair; ``secret_key`` is ``None`` for a public key alone."""

    public_key: bytes
    secret_key: bytes | None = None
    _signer: nacl.signing.SigningKey | None = field(default=None, compare=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_SIZE:
            raise InvalidArgumentError(f"a seed is {SEED_SIZE} bytes")
        signer = nacl.signing.SigningKey(bytes(seed))
        public = bytes(signer.verify_key)
        return cls(public, bytes(seed) + public, signer)

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_seed(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_secret_key(cls, secret_key: bytes) -> KeyPair:
        if len(secret_key) != SECRET_KEY_SIZE:
            raise InvalidArgumentError(f"a secret key is {SECRET_KEY_SIZE} bytes")
        kp = cls.from_seed(secret_key[:SEED_SIZE])
        if kp.public_key != secret_key[SEED_SIZE:]:
            raise InvalidArgumentError("secret key does not match its embedded public key")
        return kp

    @property
    def seed(self) -> bytes:
        if self.secret_key is None:
            raise InvalidArgumentError("this key pair has no secret key")
        return self.secret_key[:SEED_SIZE]

    @property
    def can_sign(self) -> bool:
        return self._signer is not None

    def sign(self, message: bytes) -> bytes:
        if self._signer is None:
            raise InvalidArgumentError("this key pair has no secret key and cannot sign")
        return self._signer.sign(message).signature

    def __repr__(self) -> str:
        return f"KeyPair(public_key={self.public_key.hex()})"


def verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`VerificationError` unless the signature is the key's over ``message``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        raise VerificationError("bad public key or signature size")
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as e:
        raise VerificationError("signature does not verify") from e


def is_valid(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        verify(public_key, message, signature)
    except VerificationError:
        return False
    return True
