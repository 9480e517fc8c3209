"""Training IRN: configuration, objective, data, training state, run folder, loop and command line."""
