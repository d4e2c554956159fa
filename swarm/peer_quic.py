"""The aioquic connection our endpoints run: jumbo datagrams, and a leaner handshake.

Both ends of every connection are ours, so three of aioquic's defaults that only buy
interoperability with strangers are trimmed (each one costs CPU on every handshake,
and a connect on loopback is all CPU):

* key shares: aioquic's TLS client offers one for every group it supports (P-256,
  P-384, X25519, X448), four key pairs per ClientHello, and the server then picks
  P-256. Each side offers and accepts X25519 alone: one key pair, the fastest
  exchange, the same security level.
* PADDING: a client pads every datagram that carries an Initial packet, and aioquic
  skips the zero bytes one Python iteration at a time. We skip the run at once (the
  same frames: a PADDING frame is one zero byte, RFC 9000 section 19.1).
* connection ids: aioquic asks the peer for 8 of ours, i.e. 7 NEW_CONNECTION_ID
  frames each way in the handshake's flights. RFC 9000's minimum, 2, still leaves a
  spare id for a migration; retired ones are replaced as they go.
* the server's CertificateVerify: aioquic checks its Ed25519 signature with OpenSSL,
  about a fifth of the client's work on the server's flight; libsodium (pynacl)
  verifies in half the time. The same check, or stricter (libsodium refuses
  non-canonical signatures).

And a few of aioquic's own helpers run faster (:mod:`swarm.aioquic_patches`,
installed on import). If aioquic's private attributes ever change, its defaults stay.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic.connection import QuicReceiveContext
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from storage.keypair import is_valid
from swarm import aioquic_patches
from swarm.jumbo_quic import JumboQuicConnection

GROUPS = [tls.Group.X25519]
PATCHED = aioquic_patches.install()
ACTIVE_CONNECTION_ID_LIMIT = 2


class _PeerTlsContext(tls.Context):
    """aioquic's TLS context, checking an Ed25519 CertificateVerify with libsodium."""

    def _check_certificate_verify_signature(self, verify: tls.CertificateVerify) -> None:
        key = None
        if (
            verify.algorithm == tls.SignatureAlgorithm.ED25519
            and verify.algorithm in self._signature_algorithms
            and self._peer_certificate is not None
        ):
            with contextlib.suppress(UnsupportedAlgorithm, ValueError):
                key = self._peer_certificate.public_key()
        schedule = self.key_schedule
        if not isinstance(key, Ed25519PublicKey) or schedule is None:
            super()._check_certificate_verify_signature(verify)  # aioquic's own errors
            return
        signed = schedule.certificate_verify_data(
            tls.SERVER_CONTEXT_STRING if self._is_client else tls.CLIENT_CONTEXT_STRING
        )
        if not is_valid(key.public_bytes_raw(), signed, verify.signature):
            raise tls.AlertDecryptError("CertificateVerify does not verify")


_SWAP_TLS = callable(getattr(tls.Context, "_check_certificate_verify_signature", None)) and all(
    hasattr(tls, name) for name in ("SERVER_CONTEXT_STRING", "CLIENT_CONTEXT_STRING")
)


class PeerQuicConnection(JumboQuicConnection):
    """A :class:`JumboQuicConnection` with the handshake trimmed for our own peers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(getattr(self, "_local_active_connection_id_limit", None), int):
            self._local_active_connection_id_limit = ACTIVE_CONNECTION_ID_LIMIT

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if isinstance(getattr(self.tls, "_supported_groups", None), list):
            self.tls._supported_groups = list(GROUPS)
        if _SWAP_TLS and type(self.tls) is tls.Context:
            self.tls.__class__ = _PeerTlsContext

    def _handle_padding_frame(
        self, context: QuicReceiveContext, frame_type: int, buf: Buffer
    ) -> None:
        if self._quic_logger is not None:  # aioquic's own logs each frame
            super()._handle_padding_frame(context, frame_type, buf)
            return
        start = buf.tell()
        rest = buf.data_slice(start, buf.capacity)
        buf.seek(start + len(rest) - len(rest.lstrip(b"\x00")))
