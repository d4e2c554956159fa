"""Identity in TLS: Ed25519 self-signed certificates, the client proof, control messages."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from storage.errors import DecodeError, VerificationError
from storage.keypair import KeyPair, verify
from swarm import control
from swarm.certificate import certificate_public_key, create_certificate
from swarm.errors import AuthenticationError
from swarm.proof import check_proof, sign_proof


def test_certificate_carries_the_identity_key() -> None:
    kp = KeyPair.from_seed(bytes(range(32)))
    cert, private_key = create_certificate(kp)
    assert certificate_public_key(cert) == kp.public_key
    assert cert.subject == cert.issuer  # self-signed
    verify(kp.public_key, cert.tbs_certificate_bytes, cert.signature)
    # a pure function of the key: the same key gives the same certificate
    again, _ = create_certificate(kp)
    assert again == cert
    assert private_key.sign(b"m") == kp.sign(b"m")


def test_non_ed25519_certificate_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2020, 1, 1))
        .not_valid_after(datetime.datetime(2030, 1, 1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(AuthenticationError):
        certificate_public_key(cert)


def test_proof_is_bound_to_key_and_binding() -> None:
    kp, other = KeyPair.generate(), KeyPair.generate()
    binding = bytes(48)
    signature = sign_proof(kp, binding)
    check_proof(kp.public_key, binding, signature)
    with pytest.raises(AuthenticationError):
        check_proof(kp.public_key, b"\x01" * 48, signature)  # replayed on another connection
    with pytest.raises(AuthenticationError) as info:
        check_proof(other.public_key, binding, signature)
    assert isinstance(info.value, VerificationError)


def test_control_messages_round_trip_in_any_chunking() -> None:
    messages: list[control.Message] = [
        control.Hello(b"k" * 32, b"s" * 64, 1 << 20),
        control.Hello(b"k" * 32, b"s" * 64, 1 << 20, b"t" * 16),
        control.Accept(65536),
        control.Credit(4, 123456789),
        control.Credit((1 << 62) - 1, (1 << 62) - 1),
    ]
    wire = b"".join(control.encode(m) for m in messages)
    for step in (1, 3, 7, len(wire)):
        decoder = control.ControlDecoder()
        out: list[control.Message] = []
        for i in range(0, len(wire), step):
            out += decoder.feed(wire[i : i + step])
        assert out == messages
        assert decoder.pending == 0


@pytest.mark.parametrize(
    "wire",
    [
        b"\x00",  # unknown type
        b"\x09" + bytes(16),
        bytes([0x01, 0x01]) + bytes(116),  # unknown version (1: before tickets)
        b"\x02" + (1).to_bytes(4, "big"),  # window too small
        b"\x02" + (1 << 30).to_bytes(4, "big"),  # window too large
        b"\x03" + (1 << 63).to_bytes(8, "big") + bytes(8),  # stream id out of range
    ],
)
def test_malformed_control_messages_raise_decode_error(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        control.ControlDecoder().feed(wire)


@given(st.lists(st.binary(max_size=120), max_size=8))
def test_control_decoder_never_raises_anything_but_decode_error(chunks: list[bytes]) -> None:
    decoder = control.ControlDecoder()
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except DecodeError:
        return
    assert decoder.pending < 118
