"""The public API: join topics, connect to peers by key, replicate stores."""
