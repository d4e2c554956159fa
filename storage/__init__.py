"""Storage: identity, the LMDB store, the signed append-only log (Core) and the B-tree (Bee)."""

from storage.errors import PeerswarmError
from storage.keypair import KeyPair

__all__ = ["KeyPair", "PeerswarmError"]
