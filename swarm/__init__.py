"""The public API: join topics, connect to peers by key, replicate stores."""

from swarm.connection import Connection
from swarm.discovery import Discovery
from swarm.errors import (
    AuthenticationError,
    ConnectionClosedError,
    HandshakeError,
    PeerNotFoundError,
    PeerRejectedError,
    StreamResetError,
    SwarmError,
)
from swarm.peer_info import PeerInfo
from swarm.quic_endpoint import QuicEndpoint
from swarm.quic_options import QuicOptions
from swarm.standalone_endpoint import StandaloneEndpoint
from swarm.stream import Stream
from swarm.swarm import Swarm, key_topic

__all__ = [
    "AuthenticationError",
    "Connection",
    "ConnectionClosedError",
    "Discovery",
    "HandshakeError",
    "PeerInfo",
    "PeerNotFoundError",
    "PeerRejectedError",
    "QuicEndpoint",
    "QuicOptions",
    "StandaloneEndpoint",
    "Stream",
    "StreamResetError",
    "Swarm",
    "SwarmError",
    "key_topic",
]
