"""The wall-clock driver: KME services, transport, `qkdnet serve`."""
