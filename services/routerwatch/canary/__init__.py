"""Canary probes across the routing boundary: versioned canary sets and their answer checks."""
