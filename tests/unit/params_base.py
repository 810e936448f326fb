"""A minimal valid parameter mapping the params tests start from."""

BASE = {
    "vm": "alice",
    "source": {"type": "lab", "host": "esx-a"},
    "destination": {"type": "lab", "host": "esx-b"},
    "workspace": "ws",
}
