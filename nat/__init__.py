"""Reachability: NAT classification, hole punching, relays, and the virtual network for tests."""
