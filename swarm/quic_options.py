"""Tunables of the QUIC layer, and the aioquic configuration built from them."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicProtocolVersion
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from swarm import jumbo_quic
from swarm.control import MIN_WINDOW

ALPN = "peerswarm/1"
VERSIONS = (QuicProtocolVersion.VERSION_1,)
"""The QUIC versions we speak. aioquic derives Initial keys for every version it is
configured with, on both sides of every handshake; version 2 would buy us nothing."""


@dataclass(frozen=True)
class QuicOptions:
    """How connections behave; the defaults suit both loopback tests and the Internet.

    ``idle_timeout`` bounds how long a vanished peer goes unnoticed; ``keepalive``
    pings keep a quiet connection (and its NAT mapping) alive well inside it.
    """

    idle_timeout: float = 5.0
    keepalive: float = 1.5
    handshake_timeout: float = 10.0
    # a graceful close() waits at most this long for the peer to acknowledge our data
    close_timeout: float = 2.0
    # our receive window per stream (bytes a peer may send ahead of what the app read):
    # it starts small and doubles, up to the maximum, while the app keeps up
    stream_window: int = 256 * 1024
    max_stream_window: int = 4 * 1024 * 1024
    # what a stream may carry before the server verified and admitted its client: a
    # client whose relayed handshake was accepted writes at once, within this much,
    # and an unproven peer cannot make us buffer more (at least 16 KiB)
    early_stream_window: int = 64 * 1024
    # a write buffer above this makes drain() wait
    write_high_water: int = 64 * 1024
    # 1350 fits in every common path (IPv6, PPPoE, tunnels) without PMTU discovery
    max_datagram_size: int = 1350
    # to this host (loopback, 64 KiB MTU) big packets cut aioquic's per-packet Python
    # cost; swarm.jumbo_quic fills them with several frames (under 65507, IPv4's limit)
    loopback_datagram_size: int = 64000
    congestion_control: str = "reno"
    max_connections: int = 256
    max_handshakes: int = 64
    # peer-opened streams not yet accepted by the app; more are refused (STREAM_REFUSED).
    # 128 is aioquic's initial stream limit: a burst of datagrams (64 KiB each on
    # loopback) can open that many before the app's acceptor runs once
    max_pending_streams: int = 128

    @property
    def early_window(self) -> int:
        """The per-stream window before admission: never above :attr:`stream_window`."""
        return max(MIN_WINDOW, min(self.early_stream_window, self.stream_window))


def quic_configuration(
    options: QuicOptions,
    *,
    is_client: bool,
    local: bool,
    certificate: x509.Certificate,
    private_key: Ed25519PrivateKey,
) -> QuicConfiguration:
    """An aioquic configuration for connections with peers on this host (``local``:
    loopback-sized datagrams) or elsewhere.

    Certificate chains are not verified (``CERT_NONE``): peers are authenticated by
    pinning the certificate's key to the expected identity, see ``swarm.connection``.
    Both sides present a certificate; only the server's is seen by aioquic.
    """
    size = options.loopback_datagram_size if local else options.max_datagram_size
    if not jumbo_quic.SUPPORTED:  # pragma: no cover - another aioquic: one frame per packet
        size = min(size, jumbo_quic.SMALL_DATAGRAM_LIMIT)
    return QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        verify_mode=ssl.CERT_NONE,
        certificate=certificate,
        private_key=private_key,
        idle_timeout=options.idle_timeout,
        max_datagram_size=size,
        # our own credit (swarm.control) bounds memory; QUIC's windows must just not
        # get in its way, so they start well above it (aioquic grows them as used)
        max_stream_data=max(options.stream_window, options.max_stream_window),
        max_data=4 * max(options.stream_window, options.max_stream_window),
        congestion_control_algorithm=options.congestion_control,
        supported_versions=list(VERSIONS),
    )
