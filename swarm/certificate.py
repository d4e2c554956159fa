"""Self-signed TLS certificates that carry a node's Ed25519 identity key.

A peer is its key: the certificate is only a wrapper TLS needs, so it is
self-signed by the identity key itself and nobody checks names or dates. What the
other side checks is that the certificate's key is the key it expected (a pin),
and TLS's CertificateVerify (signature scheme ed25519, 0x0807) proves the sender
holds the matching secret key for this very handshake.
"""

from __future__ import annotations

import datetime

from aioquic import tls
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from storage.keypair import KeyPair
from swarm.errors import AuthenticationError

# Fixed dates: validity is not checked by peers, and fixed values keep the
# certificate a pure function of the key (Ed25519 signatures are deterministic).
_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)


def identity_private_key(key_pair: KeyPair) -> Ed25519PrivateKey:
    """The ``cryptography`` view of a key pair's secret key (TLS signs with it)."""
    return Ed25519PrivateKey.from_private_bytes(key_pair.seed)


def create_certificate(key_pair: KeyPair) -> tuple[x509.Certificate, Ed25519PrivateKey]:
    """A certificate for ``key_pair`` signed by itself, and the key TLS signs with."""
    private_key = identity_private_key(key_pair)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key_pair.public_key.hex())])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(int.from_bytes(key_pair.public_key[:16], "big") >> 1 or 1)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .sign(private_key, None)
    )
    return certificate, private_key


def certificate_public_key(certificate: x509.Certificate) -> bytes:
    """The raw 32-byte Ed25519 key of a certificate; anything else is refused."""
    try:
        key = certificate.public_key()
    except ValueError as e:
        raise AuthenticationError("certificate has an unreadable key") from e
    if not isinstance(key, Ed25519PublicKey):
        raise AuthenticationError("certificate key is not Ed25519")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def peer_certificate(context: tls.Context) -> x509.Certificate:
    """The certificate the peer presented in this TLS handshake.

    aioquic keeps it in a private attribute and has no accessor; reading it here,
    in one place, keeps that dependency visible and tested.
    """
    certificate = getattr(context, "_peer_certificate", None)
    if not isinstance(certificate, x509.Certificate):
        raise AuthenticationError("the peer presented no certificate")
    return certificate
