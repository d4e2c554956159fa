import pytest

from storage.errors import InvalidArgumentError, PeerswarmError, VerificationError
from storage.keypair import KeyPair, is_valid, verify


def test_seed_is_deterministic_and_signs(hypercore_vectors: dict) -> None:
    for s in hypercore_vectors["sets"]:
        kp = KeyPair.from_seed(bytes.fromhex(s["seed"]))
        assert kp.public_key.hex() == s["public_key"]
        sig = kp.sign(b"msg")
        verify(kp.public_key, b"msg", sig)
        assert KeyPair.from_secret_key(kp.secret_key or b"").public_key == kp.public_key


def test_bad_signature_and_sizes_are_clear_errors() -> None:
    a, b = KeyPair.generate(), KeyPair.generate()
    sig = a.sign(b"x")
    assert is_valid(a.public_key, b"x", sig)
    assert not is_valid(b.public_key, b"x", sig)
    assert not is_valid(a.public_key, b"y", sig)
    with pytest.raises(VerificationError):
        verify(a.public_key, b"x", sig[:10])
    with pytest.raises(InvalidArgumentError):
        KeyPair.from_seed(b"short")
    with pytest.raises(PeerswarmError):
        KeyPair(a.public_key).sign(b"x")
