"""Training: the config, data loading onto the model grid, the losses, the stage recipe and
the Ray Train launcher."""
