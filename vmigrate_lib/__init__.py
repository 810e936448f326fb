"""vmigrate: near-zero-downtime VM migration by iterative differential sync."""

__version__ = "0.1.0"
