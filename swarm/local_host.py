"""Which addresses are this machine: they get loopback treatment (big packets, first dial)."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket

from dht.transport import Address


@functools.cache
def local_ips() -> tuple[str, ...]:
    """This host's primary LAN address (found without sending a packet), then loopback."""
    ips: list[str] = []
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.254.254.254", 1))
        ips.append(str(s.getsockname()[0]))
    ips.append("127.0.0.1")
    return tuple(dict.fromkeys(ips))


def is_this_host(addr: Address) -> bool:
    """Whether packets to ``addr`` stay on this machine (the kernel loops them back)."""
    try:
        ip = ipaddress.ip_address(addr[0])
    except ValueError:
        return False
    return ip.is_loopback or str(ip) in local_ips()
