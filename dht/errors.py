"""DHT errors: subclasses of the one peerswarm hierarchy (``storage.errors``)."""

from __future__ import annotations

from storage.errors import PeerswarmError


class DHTError(PeerswarmError):
    """Root of the errors the DHT raises on purpose."""


class RequestTimeoutError(DHTError, TimeoutError):
    """A request got no reply after all its retries."""


class QueryError(DHTError):
    """An iterative query could not do its job (no node answered, nothing stored)."""


class RemoteError(DHTError):
    """A node answered a request with an error code (see ``dht.messages.ErrorCode``)."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        super().__init__(message or f"remote error {code}")


class UnknownTargetError(RemoteError):
    """The forwarding node holds no announcement of the target public key."""


class ForwardError(RemoteError):
    """The target of a forwarded message did not answer or had no handler for it."""


class SeqTooLowError(RemoteError):
    """A mutable value is older than (or conflicts with) the one already stored."""


class CASMismatchError(RemoteError):
    """A compare-and-swap put found a different sequence number than expected."""
