"""Ed25519 identity: the one key pair that signs logs, announcements and TLS certificates."""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.signing

from storage.errors import InvalidArgumentError, VerificationError

PUBLIC_KEY_SIZE = 32
SECRET_KEY_SIZE = 64  # libsodium layout: seed || public key
SEED_SIZE = 32
SIGNATURE_SIZE = 64

try:  # libsodium's crypto_sign without pynacl's checks and copies (~2 us of ~17 per sign)
    from nacl._sodium import ffi as _ffi
    from nacl._sodium import lib as _lib

    _new, _buffer, _crypto_sign, _NULL = _ffi.new, _ffi.buffer, _lib.crypto_sign, _ffi.NULL

    def _sign(message: bytes, secret_key: bytes) -> bytes:
        # A fresh output buffer per call: cffi drops the GIL during the call.
        out = _new("unsigned char[]", len(message) + SIGNATURE_SIZE)
        if _crypto_sign(out, _NULL, message, len(message), secret_key) != 0:
            raise InvalidArgumentError("signing failed")
        sig: bytes = _buffer(out, SIGNATURE_SIZE)[:]
        return sig

except (ImportError, AttributeError):  # pragma: no cover - another pynacl layout

    def _sign(message: bytes, secret_key: bytes) -> bytes:
        signed: bytes = nacl.bindings.crypto_sign(message, secret_key)
        return signed[:SIGNATURE_SIZE]


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
        """Ed25519 (deterministic): the same bytes as ``SigningKey.sign(message).signature``."""
        if self._signer is None or self.secret_key is None:
            raise InvalidArgumentError("this key pair has no secret key and cannot sign")
        return _sign(bytes(message), self.secret_key)

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
