"""The one exception hierarchy of peerswarm.

Every error peerswarm raises on purpose derives from :class:`PeerswarmError`, so an
app can catch the whole family with one clause. Layers above ``storage`` add their
own subclasses (``dht.errors``, ``nat.errors``, ``swarm.errors``) but never a new root.
"""

from __future__ import annotations


class PeerswarmError(Exception):
    """Root of every error peerswarm raises on purpose."""


class DecodeError(PeerswarmError, ValueError):
    """Bytes from the wire or the disk are malformed: bad size, type, range or tag."""


class VerificationError(PeerswarmError):
    """A signature, hash or Merkle proof does not check out."""


class StorageError(PeerswarmError):
    """The store cannot do what was asked (closed, corrupt, out of space)."""


class ClosedError(PeerswarmError):
    """The object was used after ``close()``."""


class InvalidArgumentError(PeerswarmError, ValueError):
    """A caller passed a value outside what the API accepts."""


class BlockTooLargeError(InvalidArgumentError):
    """A block is larger than the maximum a Core accepts."""


class OutOfRangeError(PeerswarmError, IndexError):
    """An index lies past the length of a log (or before its start)."""


class NotWritableError(PeerswarmError):
    """A write was attempted on a read-only view or a replica without the secret key."""


class BlockNotAvailableError(PeerswarmError):
    """A block is not stored locally and no peer delivered it in time."""


class NotABeeError(DecodeError):
    """A core's first block is not a Bee header: the core holds something else."""


class EncodingError(InvalidArgumentError):
    """A key or value cannot be encoded with the database's encoding (or is too large)."""


class CorruptionError(VerificationError, StorageError):
    """Stored bytes no longer match the hashes the store recorded for them."""


class ForkMismatchError(VerificationError):
    """A proof belongs to an older fork (a truncated history) than the one held."""


class SnapshotNotAvailableError(BlockNotAvailableError):
    """A snapshot's block was removed by a later truncation of its core."""
