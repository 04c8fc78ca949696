"""tape-runner's Hydra plugins (Hydra only instantiates plugins from ``hydra_plugins``)."""
