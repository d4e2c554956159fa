"""What a swarm knows about one peer key."""

from __future__ import annotations

from dataclasses import dataclass, field

from dht.records import PeerRecord
from dht.transport import Address


@dataclass
class PeerInfo:
    """A peer seen through a topic, a ``connect`` or an incoming connection."""

    public_key: bytes
    topics: set[bytes] = field(default_factory=set)
    connected: bool = False
    attempts: int = 0
    banned: bool = False
    record: PeerRecord | None = None
    """The newest verified announcement of the key seen here: a later connect by key
    asks its relays straight away, with no DHT query first."""
    holder: Address | None = None
    """The node that answered with :attr:`record` (it holds the announcement, and we
    its token): asked first."""
