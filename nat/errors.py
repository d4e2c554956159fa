"""Errors of the reachability layer (NAT, punching, relays, the virtual network)."""

from __future__ import annotations

from storage.errors import InvalidArgumentError, PeerswarmError


class NatError(PeerswarmError):
    """Root of the errors ``nat`` raises."""


class AddressInUseError(NatError, OSError):
    """A virtual port is already bound (the virtual ``EADDRINUSE``)."""


class AddressUnavailableError(NatError, InvalidArgumentError):
    """No virtual host has that address, or it is already taken (``EADDRNOTAVAIL``)."""
