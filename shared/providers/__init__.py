"""Platform providers, one module per platform behind the interface in `base`."""
