"""Kademlia DHT on one UDP socket: RPC, routing, signed records, observed addresses."""

from dht.errors import DHTError
from dht.nat_type import NatType
from dht.node import DHTNode, LookupTrace
from dht.records import MutableValue, PeerRecord
from dht.routing_table import RoutingTable

__all__ = [
    "DHTError",
    "DHTNode",
    "LookupTrace",
    "MutableValue",
    "NatType",
    "PeerRecord",
    "RoutingTable",
]
