"""Storage: identity, the LMDB store, the signed append-only log (Core) and the B-tree (Bee)."""

from storage.bee import Bee
from storage.bee_entry import Entry
from storage.core import Core
from storage.errors import PeerswarmError
from storage.keypair import KeyPair
from storage.node import Node
from storage.proof import MAX_BLOCK_SIZE, Proof, VerifiedBlock, verify_proof
from storage.snapshot import Snapshot
from storage.store import Store

__all__ = [
    "MAX_BLOCK_SIZE",
    "Bee",
    "Core",
    "Entry",
    "KeyPair",
    "Node",
    "PeerswarmError",
    "Proof",
    "Snapshot",
    "Store",
    "VerifiedBlock",
    "verify_proof",
]
