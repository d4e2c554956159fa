"""Reachability: NAT classification, hole punching, relays, and the virtual network for tests."""

from dht.nat_type import NatType
from nat.simulation import Simulation, SimulationResult, run_simulation, simulate
from nat.virtual_network import Middlebox, Packet, VirtualNetwork
from nat.virtual_time import VirtualTimeLoop, run_virtual, virtual_time

__all__ = [
    "Middlebox",
    "NatType",
    "Packet",
    "Simulation",
    "SimulationResult",
    "VirtualNetwork",
    "VirtualTimeLoop",
    "run_simulation",
    "run_virtual",
    "simulate",
    "virtual_time",
]
