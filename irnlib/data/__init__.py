"""Datasets: the registry of known sets, verified downloads, folders, test pairs and training patches."""
