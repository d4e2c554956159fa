"""Our side of each suite: one async ``run(params) -> {"metrics": ..., "info": ...}`` per module."""
