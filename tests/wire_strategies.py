"""Hypothesis strategies for what arrives from the network: addresses and msgpack junk."""

from __future__ import annotations

from hypothesis import strategies as st

ipv4 = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
addresses = st.builds(
    lambda ip, port: (".".join(map(str, ip)), port), ipv4, st.integers(1, 65535)
) | st.builds(lambda port: ("::1", port), st.integers(1, 65535))

# msgpack values of every kind, nested: reaches the field checks, not just the parser
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=8),
    max_leaves=30,
)
