"""Errors of the connection layer, all under :class:`storage.errors.PeerswarmError`."""

from __future__ import annotations

from storage.errors import PeerswarmError, VerificationError


class SwarmError(PeerswarmError):
    """Root of the errors raised by ``swarm``."""


class ConnectionClosedError(SwarmError, ConnectionError):
    """The connection (or stream) is gone: closed by either side, timed out or reset.

    ``error_code`` and ``reason`` are the QUIC close code and phrase when known, so an
    app can tell "the peer said goodbye" from "the peer vanished".
    """

    def __init__(self, message: str, *, error_code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.error_code = error_code
        self.reason = reason


class StreamResetError(ConnectionClosedError):
    """The peer reset the stream (or asked us to stop sending on it)."""


class HandshakeError(SwarmError):
    """A connection could not be established: no answer, handshake failure, timeout."""


class AuthenticationError(HandshakeError, VerificationError):
    """The peer did not prove the key it had to: wrong certificate key or bad proof."""


class PeerRejectedError(HandshakeError):
    """The peer refused us: its firewall said no, it is full, or it does not listen."""


class PeerNotFoundError(SwarmError):
    """No announcement of that public key (or topic) could be found on the DHT."""


def peer_text(text: str, limit: int = 64) -> str:
    """Text a peer chose (a refusal or close reason), as our error messages quote it:
    anything unprintable escaped, at most ``limit`` characters with the escapes. Such
    messages end up in logs and terminals, where a raw escape sequence or line break
    could pass for output of ours."""
    out: list[str] = []
    size = 0
    for c in text:
        piece = c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
        size += len(piece)
        if size > limit:
            break
        out.append(piece)
    return "".join(out)
