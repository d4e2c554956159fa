"""Kademlia DHT on one UDP socket: RPC, routing, signed records, observed addresses."""
