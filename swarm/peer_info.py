"""What a swarm knows about one peer key."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PeerInfo:
    """A peer seen through a topic, a ``connect`` or an incoming connection."""

    public_key: bytes
    topics: set[bytes] = field(default_factory=set)
    connected: bool = False
    attempts: int = 0
    banned: bool = False
