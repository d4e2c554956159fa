"""Benchmark harness: ``python -m bench [core|bee|dht|connect]``."""
