"""How a node's NAT behaves, as learned from the addresses other nodes report.

The NAT layer chooses a connection strategy from the classes of both ends
(open → dial; consistent → simultaneous probes; random → birthday probing;
otherwise relay), so the class must be derived the same way everywhere:
:func:`classify` is that one definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from dht.transport import Address

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class NatType(Enum):
    UNKNOWN = "unknown"
    """Not enough reports yet (or no reachability check has finished)."""
    OPEN = "open"
    """Others see our local address and can reach us unsolicited."""
    CONSISTENT = "consistent"
    """Behind a NAT that maps our socket to one public port for every destination."""
    RANDOM = "random"
    """Behind a NAT that picks a new public port per destination: punching needs luck."""
    FIREWALLED = "firewalled"
    """No address translation, but unsolicited packets do not reach us."""


def is_translated(seen: Address, local: Address) -> bool:
    """Whether a reported address differs from the bound one (wildcard binds compare ports)."""
    if local[0] in WILDCARD_HOSTS:
        return seen[1] != local[1]
    return seen != local


def public_reports(seen: Iterable[Address], local: Address) -> list[Address]:
    """Reports from the outside: when some reporters see a translated address, the
    ones that see our local address are on our LAN and say nothing about the NAT."""
    reports = list(seen)
    translated = [r for r in reports if is_translated(r, local)]
    return translated or reports


def classify(seen: Iterable[Address], local: Address, reachable: bool | None) -> NatType:
    """The NAT class from the addresses distinct reporters saw us at.

    ``reachable`` is the result of the last ping-back check (``None``: not checked).
    Different ports from different reporters → RANDOM. Otherwise, when nothing was
    translated: reachable → OPEN, not → FIREWALLED. When translated (a NAT that kept
    one port): CONSISTENT once two reporters agree, or one did and we are reachable.
    """
    reports = public_reports(seen, local)
    if not reports:
        return NatType.UNKNOWN
    if len({port for _, port in reports}) > 1 or len(set(reports)) > 1:
        return NatType.RANDOM
    if reachable is None:
        return NatType.UNKNOWN
    if not is_translated(reports[0], local):
        return NatType.OPEN if reachable else NatType.FIREWALLED
    if len(reports) >= 2 or reachable:
        return NatType.CONSISTENT
    return NatType.UNKNOWN
