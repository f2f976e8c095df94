"""Registry models: one module per table group, all on ``RegistryBase.metadata``."""
