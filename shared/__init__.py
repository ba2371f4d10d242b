"""Herald's shared foundation: configuration, logging, metrics, clock, models, stores, providers."""
