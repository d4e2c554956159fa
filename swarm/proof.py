"""The client's proof of identity, bound to one QUIC connection.

aioquic's server cannot ask for a client certificate through its public API, so
the client proves its key inside the connection instead: it signs a value both
ends derive from this handshake's TLS master secret and full transcript (through
the client's Finished). The value is secret and unique per connection, so a
signature cannot be replayed on another connection, and a malicious server
cannot relay it to a third peer: that peer's handshake, hence its value, differs.
"""

from __future__ import annotations

from aioquic.quic.connection import QuicConnection

from storage.errors import VerificationError
from storage.keypair import KeyPair, verify
from swarm.errors import AuthenticationError

_BINDING_LABEL = b"peerswarm binding"
_PROOF_CONTEXT = b"peerswarm/1 client proof\x00"


def channel_binding(quic: QuicConnection) -> bytes:
    """A secret value only the two ends of this handshake share.

    Both sides must call it when aioquic reports ``HandshakeCompleted``: the TLS
    key schedule then holds the master secret and the transcript through the
    client's Finished on either side (TLS 1.3 over QUIC sends no later
    handshake messages into the transcript). It works like an RFC 5705 exporter
    with a label of our own; aioquic exposes no exporter, so we ask the key
    schedule directly.
    """
    schedule = getattr(quic.tls, "key_schedule", None)
    if schedule is None or getattr(schedule, "generation", 0) != 3:
        raise AuthenticationError("TLS handshake not complete; no channel binding")
    value: bytes = schedule.derive_secret(_BINDING_LABEL)
    return value


def sign_proof(key_pair: KeyPair, binding: bytes) -> bytes:
    """The client's Ed25519 signature over this connection's binding."""
    return key_pair.sign(_PROOF_CONTEXT + binding)


def check_proof(public_key: bytes, binding: bytes, signature: bytes) -> None:
    """Raise :class:`AuthenticationError` unless ``signature`` is the key's over the binding."""
    try:
        verify(public_key, _PROOF_CONTEXT + binding, signature)
    except VerificationError as e:
        raise AuthenticationError("client proof does not verify for this connection") from e
