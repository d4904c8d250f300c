"""Redis between processes: the Bus port (bus/redis_bus.py), its job ids, limit scripts and event
messages, and the embedded redis-server of `lunos-events dev`."""
